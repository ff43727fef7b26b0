"""The daily close of one entity's book for one local business day.

In order: loans whose arrears are cured leave default; loans whose oldest arrears pass
DEFAULT_AFTER_DAYS enter default (their unpaid balance becomes the in-duplum cap, and scheduled
charges beyond it are cut); loans past their last instalment and in default get the monthly
post-term charge (interest on capital owing, service fee, VAT), capped by in duplum; client
statuses follow the rules in `rules.client_status_after`. A DailyClose row per entity and day
makes the close run once: a second run for the same day finds it and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import (
    Case,
    DecimalField,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    Value,
    When,
)

from imali.clients.models import Client, ClientStatus
from imali.clients.services import client_status_apply
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.core.money import aggregate_money, from_cents, sum_cents
from imali.tenancy.models import Entity

from . import rules
from .models import OPEN_STATUSES, DailyClose, Instalment, InstalmentKind, Loan, LoanStatus
from .pricing import CENT, HUNDRED, vat_on
from .schedule import add_months

ZERO = Decimal("0.00")
MONEY_FIELD = DecimalField(max_digits=14, decimal_places=2)


def _unpaid(**filters) -> Q:
    return Q(open=True, paid__lt=F("amount"), **filters)


def _arrears_older_than(days: int, business_date: dt.date):
    """Instalments of the outer loan unpaid more than `days` after their due date."""
    return Instalment.objects.filter(_unpaid(), loan=OuterRef("pk"), due_ord__lt=business_date.toordinal() - days)


def _charges_since_default(loan: Loan) -> Decimal:
    return aggregate_money(Instalment.objects.filter(loan=loan, due_date__gt=loan.default_since),
                           c=F("fee") + F("vat") + F("interest"))["c"]


def _balances_at_default(loan_ids: list[int], business_date: dt.date) -> dict[int, Decimal]:
    """Each loan's unpaid balance at default: all capital owing plus the charges already due and
    unpaid (interest and fees of later instalments are not yet earned, so not part of it). Summed
    as whole cents (core.money.sum_cents), exact on SQLite as on PostgreSQL."""
    charges_owing = F("amount") - F("paid") - (F("capital") - F("capital_paid"))
    owing = F("capital") - F("capital_paid") + Case(When(due_ord__lte=business_date.toordinal(), then=charges_owing),
                                                    default=Value(ZERO), output_field=MONEY_FIELD)
    balances: dict[int, Decimal] = {}
    for start in range(0, len(loan_ids), 5000):
        rows = (Instalment.objects.filter(loan_id__in=loan_ids[start:start + 5000], open=True).values("loan")
                .annotate(c=sum_cents(owing)).values_list("loan", "c"))
        balances.update((loan_id, from_cents(cents)) for loan_id, cents in rows)
    return balances


def trim_scheduled_charges(loan: Loan) -> None:
    """In duplum on a loan in default (on entering it, and when a reversal leaves charges unpaid again): scheduled interest and fees falling due after the
    default date may not add up to more than the unpaid balance at default."""
    later = list(Instalment.objects.filter(loan=loan, due_date__gt=loan.default_since).order_by("due_date", "seq"))
    pieces = [getattr(i, c) for i in later for c in ("fee", "vat", "interest")]
    paid = [getattr(i, f"{c}_paid") for i in later for c in ("fee", "vat", "interest")]
    allowed = rules.in_duplum_trim(cap=loan.default_balance, charges=pieces, floors=paid)
    if allowed == pieces:
        return
    for index, inst in enumerate(later):
        fee, vat, interest = allowed[index * 3: index * 3 + 3]
        inst.fee, inst.vat, inst.interest = fee, vat, interest
        inst.amount = inst.capital + fee + vat + interest
    Instalment.objects.bulk_update(later, ["fee", "vat", "interest", "amount"])


def _post_term_charges(loan: Loan, business_date: dt.date) -> int:
    """Monthly charges after the last instalment while the loan is in default, within in duplum."""
    posted = 0
    last = Instalment.objects.filter(loan=loan).order_by("-seq").first()
    seq, previous_due = last.seq, last.due_date
    anchor_day = loan.next_charge_on.day
    while loan.next_charge_on <= business_date:
        charge_on = loan.next_charge_on
        if loan.default_since is not None and loan.default_since <= charge_on:
            capital = aggregate_money(Instalment.objects.filter(loan=loan, open=True),
                                      c=F("capital") - F("capital_paid"))["c"]
            interest = (capital * loan.interest_rate_pm / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)
            fee = loan.service_fee_pm
            fee_allowed, vat_allowed, interest_allowed = rules.in_duplum_trim(
                cap=loan.default_balance - _charges_since_default(loan), charges=[fee, vat_on(fee, loan.vat_rate), interest])
            total = fee_allowed + vat_allowed + interest_allowed
            if total > 0:
                seq += 1
                Instalment.objects.create(
                    entity_id=loan.entity_id, client_id=loan.client_id, loan=loan, seq=seq, kind=InstalmentKind.CHARGE,
                    start_date=previous_due, due_date=charge_on, start_ord=previous_due.toordinal(),
                    due_ord=charge_on.toordinal(), fee=fee_allowed, vat=vat_allowed, interest=interest_allowed,
                    capital=ZERO, amount=total,
                )
                previous_due = charge_on
                posted += 1
        loan.next_charge_on = add_months(charge_on, 1, day_of_month=anchor_day)
    Loan.objects.filter(pk=loan.pk).update(next_charge_on=loan.next_charge_on)
    return posted


def _update_client_statuses(entity: Entity, business_date: dt.date, actor=None) -> int:
    """Set-based version of rules.client_status_after, one UPDATE per transition, each client's
    change audited on the client (see clients.services.client_status_apply)."""
    bd = business_date.toordinal()
    open_loans = Loan.objects.filter(client=OuterRef("pk"), status__in=OPEN_STATUSES)
    long_arrears = Instalment.objects.filter(_unpaid(), client=OuterRef("pk"), due_ord__lt=bd - rules.BAD_AFTER_DAYS)
    written_off = Instalment.objects.filter(client=OuterRef("pk"), open=False, paid__lt=F("amount"),
                                            loan__status=LoanStatus.WRITTEN_OFF)
    clients = Client.objects.filter(entity=entity)
    automatic = clients.exclude(status__in=rules.MANUAL_CLIENT_STATUSES)
    bad = Q(Exists(long_arrears)) | Q(Exists(written_off))
    not_bad = automatic.exclude(bad)
    day = business_date.isoformat()
    transitions = (
        # A status set by a person (blacklisted, deceased, ...) stays, but never with new loans allowed.
        (clients.filter(status__in=rules.MANUAL_CLIENT_STATUSES, new_loans_allowed=True), None, False,
         f"daily close {day}: {{status}} clients take no new loans"),
        (automatic.filter(bad).exclude(status=ClientStatus.BAD, new_loans_allowed=False), ClientStatus.BAD, False,
         f"daily close {day}: arrears over {rules.BAD_AFTER_DAYS} days or a written-off loan still owed"),
        (not_bad.filter(Exists(open_loans), status=ClientStatus.BAD), ClientStatus.GOOD, True,
         f"daily close {day}: arrears cured, loans on the book"),
        (not_bad.filter(~Exists(open_loans), status=ClientStatus.BAD), ClientStatus.INACTIVE, True,
         f"daily close {day}: arrears cured, nothing on the book"),
        (not_bad.filter(Exists(open_loans), status=ClientStatus.INACTIVE), ClientStatus.GOOD, None,
         f"daily close {day}: a loan on the book"),
        (not_bad.filter(~Exists(open_loans), status=ClientStatus.GOOD), ClientStatus.INACTIVE, None,
         f"daily close {day}: nothing on the book"),
    )
    updated = 0
    for found, status, allowed, rule in transitions:
        if status is None:
            for manual in rules.MANUAL_CLIENT_STATUSES:
                updated += client_status_apply(clients=found.filter(status=manual), status=manual, new_loans_allowed=allowed,
                                               actor=actor, rule=rule.format(status=manual.replace("_", " ")))
        else:
            updated += client_status_apply(clients=found, status=status, new_loans_allowed=allowed, actor=actor, rule=rule)
    return updated


def daily_close_run(*, entity: Entity, business_date: dt.date, actor=None) -> tuple[DailyClose, bool]:
    """Close `business_date` for `entity`. Returns (close, ran): ran is False when it had run already."""
    existing = DailyClose.objects.filter(entity=entity, business_date=business_date).first()
    if existing is not None:
        return existing, False
    bd = business_date.toordinal()
    try:
        with transaction.atomic():
            close = DailyClose.objects.create(entity=entity, business_date=business_date)
            book = Loan.objects.filter(entity=entity, status__in=OPEN_STATUSES)
            any_arrears = Instalment.objects.filter(_unpaid(), loan=OuterRef("pk"), due_ord__lt=bd)
            # Paid-up loans too: a receipt that pays a loan up leaves its default as it was (so reversing
            # that receipt restores the loan exactly); the close then finds nothing in arrears.
            close.loans_cured = (
                Loan.objects.filter(entity=entity, status__in=(*OPEN_STATUSES, LoanStatus.PAID_UP), default_since__isnull=False)
                .exclude(Exists(any_arrears)).update(default_since=None, default_balance=None)
            )
            # The unpaid balance at default: all capital owing plus the charges already due and unpaid
            # (interest and fees of later instalments are not yet earned, so not part of it).
            entering = book.filter(default_since__isnull=True).filter(Exists(_arrears_older_than(rules.DEFAULT_AFTER_DAYS, business_date)))
            entering_ids = list(entering.values_list("pk", flat=True))
            # Locked like a receipt posting locks it, so a receipt allocating meanwhile sees the cut charges.
            entering_loans = list(Loan.objects.filter(pk__in=entering_ids).select_for_update().order_by("pk"))
            balances = _balances_at_default(entering_ids, business_date)
            for loan in entering_loans:
                loan.default_since, loan.default_balance = business_date, balances.get(loan.pk, ZERO)
            close.loans_defaulted = Loan.objects.bulk_update(entering_loans, ["default_since", "default_balance"], batch_size=1000)
            for loan in entering_loans:
                trim_scheduled_charges(loan)
            charges = 0
            for loan in book.filter(next_charge_on__lte=business_date).select_for_update():
                charges += _post_term_charges(loan, business_date)
            close.charges_posted = charges
            close.clients_updated = _update_client_statuses(entity, business_date, actor)
            close.save()
            audit_record(action=AuditAction.DAILY_CLOSE_RUN, actor=actor, entity=entity, target=close,
                         subject=business_date.isoformat(),
                         after={"loans_defaulted": close.loans_defaulted, "loans_cured": close.loans_cured,
                                "charges_posted": close.charges_posted, "clients_updated": close.clients_updated})
    except IntegrityError:
        # Another worker closed the same day at the same moment; its close stands. Any other
        # integrity error is a fault in the book and must be seen, not taken for that.
        existing = DailyClose.objects.filter(entity=entity, business_date=business_date).first()
        if existing is None:
            raise
        return existing, False
    return close, True


# How far back the periodic task catches up on days missed while no worker ran.
CATCH_UP_DAYS = 31


def entities_due_for_close(now: dt.datetime) -> list[tuple[Entity, dt.date]]:
    """Each active entity with every ended local day not yet closed, oldest first: the day after
    its last close up to yesterday (at most CATCH_UP_DAYS back), or just yesterday for an entity
    never closed. Closing missed days in order keeps default dates and cures on the right day."""
    from zoneinfo import ZoneInfo

    last_closed = dict(DailyClose.objects.values("entity_id").annotate(last=Max("business_date")).values_list("entity_id", "last"))
    due = []
    for entity in Entity.objects.filter(is_active=True).order_by("pk"):
        yesterday = now.astimezone(ZoneInfo(entity.time_zone)).date() - dt.timedelta(days=1)
        last = last_closed.get(entity.pk)
        first = yesterday if last is None else max(last + dt.timedelta(days=1), yesterday - dt.timedelta(days=CATCH_UP_DAYS - 1))
        day = first
        while day <= yesterday:
            due.append((entity, day))
            day += dt.timedelta(days=1)
    return due
