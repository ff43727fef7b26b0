"""Every write to the loan book: validated first, then one transaction, audited."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from imali.clients.models import AccountPurpose, Client, ClientAccount, ClientStatus
from imali.clients.services import client_status_apply
from imali.core import bulk
from imali.core.audit import audit_record, changed_only, snapshot
from imali.core.countries import country_name
from imali.core.models import AuditAction
from imali.core.money import MAX_AMOUNT, parse_decimal
from imali.tenancy.models import Entity

from . import posting, pricing
from .errors import LoanError, error, errors
from .models import (
    OPEN_STATUSES,
    ChangeRefund,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    PaybackType,
    Product,
    Receipt,
    ReceiptAllocation,
    RefundMethod,
    day_number,
    payback_type_refusal,
)
from .schedule import Schedule, add_months, build_schedule, due_dates, months_between

ZERO = Decimal("0.00")


def local_today(entity: Entity) -> dt.date:
    from zoneinfo import ZoneInfo

    return timezone.now().astimezone(ZoneInfo(entity.time_zone)).date()


# --- products ------------------------------------------------------------------------------------
PRODUCT_FIELDS = (
    "name", "credit_type", "frequency", "min_principal", "max_principal", "min_instalments", "max_instalments",
    "interest_rate_pm", "charge_initiation_fee", "initiation_fee", "service_fee_pm", "vat_rate", "is_active",
)


_PARSE_CODES = {"out_of_range": LoanError.OUT_OF_RANGE, "required": LoanError.REQUIRED}
PERCENT_MAX = Decimal(100)


def _parsed(found: dict, field: str, raw: Any, **bounds) -> Decimal | None:
    """`raw` read by core.money.parse_decimal (strict digits, places and bounds); a refusal goes
    into `found` under `field` and gives None. The one way this module reads a typed number, so a
    service called directly refuses what the API's and the web's fields refuse."""
    try:
        return parse_decimal(raw, field=field, **bounds)
    except TypeError:
        found[field] = (LoanError.INVALID, f"'{raw}' is not a number.")
    except ValidationError as exc:
        refusal = exc.error_dict[field][0]
        found[field] = (_PARSE_CODES.get(refusal.code, LoanError.INVALID), refusal.messages[0])
    return None


def _decimal(data: dict, field: str, found: dict, *, places: int = 2, maximum: Decimal = MAX_AMOUNT) -> Decimal | None:
    """A money field (two places, zero to MAX_AMOUNT) or, with places and maximum, a rate."""
    raw = data.get(field)
    if raw in (None, ""):
        found[field] = (LoanError.REQUIRED, "This field is required.")
        return None
    return _parsed(found, field, raw, places=places, maximum=maximum)


def _positive_money(amount: Any, found: dict, *, field: str = "amount") -> Decimal | None:
    """An amount above zero and at most MAX_AMOUNT (core.money.parse_amount's rules)."""
    return _parsed(found, field, amount, allow_minimum=False)


def _int(data: dict, field: str, found: dict, *, minimum: int = 1) -> int | None:
    raw = data.get(field)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        found[field] = (LoanError.REQUIRED if raw in (None, "") else LoanError.INVALID, "Enter a whole number.")
        return None
    if value < minimum:
        found[field] = (LoanError.OUT_OF_RANGE, f"Must be at least {minimum}.")
    return value


def _clean_product(entity: Entity, data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(PRODUCT_FIELDS))
    if unknown:
        raise error(unknown[0], LoanError.INVALID, f"'{unknown[0]}' is not a product field.")
    found: dict[str, tuple[LoanError, str]] = {}
    cleaned: dict[str, Any] = {}
    name = " ".join(str(data.get("name") or "").split())
    if not name:
        found["name"] = (LoanError.REQUIRED, "This field is required.")
    cleaned["name"] = name
    if data.get("credit_type") not in pricing.CreditType.values:
        found["credit_type"] = (LoanError.INVALID, "Choose short-term or unsecured credit.")
    cleaned["credit_type"] = data.get("credit_type")
    if data.get("frequency") not in ("monthly", "fortnightly", "weekly"):
        found["frequency"] = (LoanError.INVALID, "Choose monthly, fortnightly or weekly.")
    cleaned["frequency"] = data.get("frequency")
    for field in ("min_principal", "max_principal", "service_fee_pm"):
        cleaned[field] = _decimal({"service_fee_pm": "0", **data}, field, found)
    cleaned["interest_rate_pm"] = _decimal(data, "interest_rate_pm", found, places=4, maximum=PERCENT_MAX)
    default_vat = pricing.DEFAULT_VAT_RATES.get(entity.country, Decimal("15"))
    cleaned["vat_rate"] = _decimal({"vat_rate": default_vat, **data}, "vat_rate", found, maximum=PERCENT_MAX)
    cleaned["min_instalments"] = _int({"min_instalments": 1, **data}, "min_instalments", found)
    cleaned["max_instalments"] = _int(data, "max_instalments", found)
    cleaned["initiation_fee"] = None
    if data.get("initiation_fee") not in (None, ""):
        cleaned["initiation_fee"] = _decimal(data, "initiation_fee", found)
    caps = pricing.caps_for(entity.country)
    # Not said: charged where a cap sets it, or where the lender gave its own fee.
    charge_default = caps is not None or cleaned["initiation_fee"] is not None
    cleaned["charge_initiation_fee"] = bool(data.get("charge_initiation_fee", charge_default))
    place = country_name(entity.country)
    if caps is not None and cleaned["initiation_fee"] is not None:
        found["initiation_fee"] = (LoanError.INVALID, f"In {place} the initiation fee is the highest the statutory cap "
                                                      f"allows on each loan: leave this blank.")
    elif caps is None and cleaned["charge_initiation_fee"] and cleaned["initiation_fee"] is None and "initiation_fee" not in found:
        found["initiation_fee"] = (LoanError.REQUIRED, f"No initiation-fee cap is recorded for {place}: enter the fee "
                                                       f"this product charges (before VAT), or do not charge one.")
    cleaned["is_active"] = bool(data.get("is_active", True))
    if not found:
        if cleaned["min_principal"] <= 0:
            found["min_principal"] = (LoanError.OUT_OF_RANGE, "Must be more than zero.")
        if cleaned["max_principal"] < cleaned["min_principal"]:
            found["max_principal"] = (LoanError.OUT_OF_RANGE, "Must not be below the minimum principal.")
        if cleaned["max_instalments"] < cleaned["min_instalments"]:
            found["max_instalments"] = (LoanError.OUT_OF_RANGE, "Must not be below the minimum number of instalments.")
        for cap in pricing.check_product_terms(
            country=entity.country, credit_type=cleaned["credit_type"], frequency=cleaned["frequency"],
            max_principal=cleaned["max_principal"], max_instalments=cleaned["max_instalments"],
            interest_rate_pm=cleaned["interest_rate_pm"], service_fee_pm=cleaned["service_fee_pm"],
            on=local_today(entity),
        ):
            found.setdefault(cap.field, (LoanError.OUT_OF_RANGE, cap.message, cap.cap))
    if found:
        raise _cap_errors(found)
    return cleaned


def _cap_errors(found: dict[str, tuple]) -> ValidationError:
    """{field: (code, message) or (code, message, the cap it breaks)}. A cap's message names it in
    words (what a person reads); its code, "cap_<cap>", tells an API client which cap."""
    out = {}
    for field, (code, message, *cap) in found.items():
        out[field] = [ValidationError(message, code=f"cap_{cap[0].value}" if cap else code.value)]
    return ValidationError(out)


def product_create(*, entity: Entity, actor, data: dict[str, Any]) -> Product:
    cleaned = _clean_product(entity, data)
    try:
        with transaction.atomic():
            if Product.objects.filter(entity=entity, name=cleaned["name"]).exists():
                raise error("name", LoanError.INVALID, "A product with this name exists already.")
            product = Product.objects.create(entity=entity, **cleaned)
            audit_record(action=AuditAction.LOAN_PRODUCT_CREATED, actor=actor, entity=entity, target=product,
                         subject=product.name, after=snapshot(product))
    except IntegrityError:
        # A concurrent request created the same name between the check and the insert.
        raise error("name", LoanError.INVALID, "A product with this name exists already.") from None
    return product


def product_update(*, product: Product, actor, data: dict[str, Any]) -> Product:
    current = {f: getattr(product, f) for f in PRODUCT_FIELDS}
    cleaned = _clean_product(product.entity, {**current, **data})
    try:
        with transaction.atomic():
            locked = Product.objects.select_for_update().get(pk=product.pk, entity=product.entity)
            if Product.objects.filter(entity=product.entity, name=cleaned["name"]).exclude(pk=locked.pk).exists():
                raise error("name", LoanError.INVALID, "A product with this name exists already.")
            before = snapshot(locked)
            for name, value in cleaned.items():
                setattr(locked, name, value)
            locked.save()
            b, a = changed_only(before, snapshot(locked))
            if a:
                audit_record(action=AuditAction.LOAN_PRODUCT_UPDATED, actor=actor, entity=locked.entity, target=locked,
                             subject=locked.name, before=b, after=a)
    except IntegrityError:
        raise error("name", LoanError.INVALID, "A product with this name exists already.") from None
    return locked


# --- loans ---------------------------------------------------------------------------------------
def _is_repeat_in_year(client: Client, on: dt.date, *, exclude: int | None = None) -> bool:
    """A later short-term loan in the same calendar year (the 3% cap applies)."""
    return (
        Loan.objects.filter(client=client, product__credit_type=pricing.CreditType.SHORT_TERM,
                            status__in=(LoanStatus.ACTIVE, LoanStatus.PAID_UP, LoanStatus.WRITTEN_OFF, LoanStatus.HANDED_OVER),
                            disbursed_on__year=on.year)
        .exclude(pk=exclude)
        .exists()
    )


def loan_schedule(*, loan: Loan, start: dt.date, country: str) -> Schedule:
    dates = due_dates(start=start, count=loan.instalments, frequency=loan.frequency, pay_day=loan.pay_day,
                      country=country, move_direction=loan.move_direction)
    return build_schedule(
        principal=loan.principal, rate_pm=loan.interest_rate_pm, frequency=loan.frequency, dates=dates, start=start,
        initiation_fee=loan.initiation_fee,
        service_fee_per_instalment=pricing.service_fee_per_instalment(loan.service_fee_pm, loan.frequency),
        vat_rate=loan.vat_rate,
    )


def _check_caps(loan: Loan, *, credit_type: str, country: str, on: dt.date, schedule: Schedule) -> None:
    months = months_between(on, schedule.instalments[-1].due_date)
    found = pricing.check_loan_terms(
        country=country, credit_type=credit_type, principal=loan.principal, interest_rate_pm=loan.interest_rate_pm,
        initiation_fee=loan.initiation_fee, service_fee_pm=loan.service_fee_pm, on=on,
        is_repeat_in_year=_is_repeat_in_year(loan.client, on, exclude=loan.pk), months_to_last_due=months,
    )
    if found:
        raise _cap_errors({c.field: (LoanError.OUT_OF_RANGE, c.message, c.cap) for c in found})


def loan_apply(
    *, entity: Entity, actor, client: Client, product: Product, principal: Any, instalments: Any,
    applied_on: dt.date | None = None, pay_day: int | None = None, interest_rate_pm: Any = None,
    initiation_fee: Any = None,
) -> Loan:
    """Capture an application. Terms come from the product; the rate is lowered to the cap for a
    later short-term loan in the same year unless a rate is given (then it is checked, not lowered)."""
    found: dict[str, tuple[LoanError, str]] = {}
    if client.entity_id != entity.pk:
        raise error("client", LoanError.OTHER_ENTITY)
    if product.entity_id != entity.pk:
        raise error("product", LoanError.OTHER_ENTITY)
    if not product.is_active:
        found["product"] = (LoanError.PRODUCT_INACTIVE, LoanError.PRODUCT_INACTIVE.label)
    refusal = borrower_refusal(client)
    if refusal:
        found["client"] = (LoanError.CLIENT_NOT_ALLOWED, refusal)
    amount = _positive_money(principal, found, field="principal")
    if amount is not None and not product.min_principal <= amount <= product.max_principal:
        found["principal"] = (LoanError.OUT_OF_RANGE,
                              f"The product lends {product.min_principal:,.2f} to {product.max_principal:,.2f}.")
    count = _int({"instalments": instalments}, "instalments", found)
    if count is not None and not product.min_instalments <= count <= product.max_instalments:
        found["instalments"] = (LoanError.OUT_OF_RANGE,
                                f"The product allows {product.min_instalments} to {product.max_instalments} instalments.")
    if pay_day is None and (client.payment_frequency == "monthly") == (product.frequency == "monthly"):
        # The client's pay day is a day of the month or of the week, matching the client's frequency.
        pay_day = client.payment_day
    if pay_day is not None:
        limit = 31 if product.frequency == "monthly" else 7
        if not 1 <= int(pay_day) <= limit:
            found["pay_day"] = (LoanError.OUT_OF_RANGE, f"The pay day must be 1 to {limit} for {product.frequency} payments.")
    if found:
        raise errors(found)
    applied_on = applied_on or local_today(entity)
    caps = pricing.caps_for(entity.country)
    repeat = _is_repeat_in_year(client, applied_on)
    if interest_rate_pm in (None, ""):
        rate = product.interest_rate_pm
        if caps is not None:
            rate = pricing.capped_rate(rate, caps=caps, credit_type=product.credit_type, on=applied_on, is_repeat_in_year=repeat)
    else:
        rate = _decimal({"interest_rate_pm": interest_rate_pm}, "interest_rate_pm", found, places=4, maximum=PERCENT_MAX)
    if initiation_fee in (None, ""):
        fee = ZERO
        if product.charge_initiation_fee and caps is not None:
            fee = pricing.max_initiation_fee(amount, caps.initiation_fee)
        elif product.charge_initiation_fee:
            fee = product.initiation_fee or ZERO  # the lender's own fee where no cap is recorded
    else:
        fee = _decimal({"initiation_fee": initiation_fee}, "initiation_fee", found)
    if found:
        raise errors(found)
    loan = Loan(
        entity=entity, client=client, product=product, status=LoanStatus.APPLICATION, principal=amount,
        instalments=count, frequency=product.frequency, pay_day=pay_day, move_direction=client.payment_move_direction,
        interest_rate_pm=rate, initiation_fee=fee, service_fee_pm=product.service_fee_pm, vat_rate=product.vat_rate,
        applied_on=applied_on, created_by=actor,
    )
    schedule = loan_schedule(loan=loan, start=applied_on, country=entity.country)
    _check_caps(loan, credit_type=product.credit_type, country=entity.country, on=applied_on, schedule=schedule)
    loan.total_repayable = schedule.total_repayable
    loan.instalment_amount = schedule.instalment_amount
    with transaction.atomic():
        # Again under the client's row lock: the client object given may be older than a status
        # change made meanwhile (a blacklisting, the daily close).
        _require_borrower(Client.objects.select_for_update().get(pk=client.pk, entity=entity))
        loan.save()
        audit_record(action=AuditAction.LOAN_APPLIED, actor=actor, entity=entity, target=loan,
                     subject=str(client.number), after=snapshot(loan))
    return loan


def borrower_refusal(client: Client) -> str:
    """Why the client may not borrow now, or "": only Good or Inactive clients with New Loans
    Allowed may. Checked at application, and again at approval and disbursement, since the
    client's status can move in between (daily close, write-off, a person's edit)."""
    if client.new_loans_allowed and client.status in (ClientStatus.GOOD, ClientStatus.INACTIVE):
        return ""
    return (f"The client may not take a new loan (status {client.get_status_display()}, "
            f"new loans {'allowed' if client.new_loans_allowed else 'not allowed'}).")


def _require_borrower(client: Client) -> None:
    refusal = borrower_refusal(client)
    if refusal:
        raise error("client", LoanError.CLIENT_NOT_ALLOWED, refusal)


def _locked_loan(loan: Loan) -> Loan:
    # The loan and its client locked, never the product: a bare FOR UPDATE locks every joined row,
    # and one product row shared by all its loans made every receipt, approval and payout of the
    # product wait for the one before it (a burst of mobile-money callbacks ran one at a time).
    return (Loan.objects.select_for_update(of=("self", "client")).select_related("client", "product")
            .get(pk=loan.pk, entity_id=loan.entity_id))


_require_status = posting.require_status


def loan_approve(*, loan: Loan, actor) -> Loan:
    with transaction.atomic():
        locked = _locked_loan(loan)
        _require_status(locked, (LoanStatus.APPLICATION,), "approved")
        _require_borrower(locked.client)
        locked.status = LoanStatus.APPROVED
        locked.approved_by = actor
        locked.approved_at = timezone.now()
        locked.save(update_fields=["status", "approved_by", "approved_at"])
        audit_record(action=AuditAction.LOAN_APPROVED, actor=actor, entity=locked.entity, target=locked,
                     subject=str(locked.client.number), before={"status": LoanStatus.APPLICATION}, after={"status": locked.status})
    return locked


def loan_disburse(*, loan: Loan, actor, payout_account: ClientAccount | None, disbursed_on: dt.date | None = None) -> Loan:
    """Pay the loan out: the schedule is built from the disbursement date and the caps checked again."""
    entity = loan.entity
    if loan.principal > (getattr(actor, "disbursement_limit", None) or ZERO):
        raise error("principal", LoanError.OVER_DISBURSEMENT_LIMIT,
                    f"{loan.principal:,.2f} is above your disbursement limit of {getattr(actor, 'disbursement_limit', ZERO) or ZERO:,.2f}.")
    _require_payout_account(loan, payout_account)
    disbursed_on = disbursed_on or local_today(entity)
    with transaction.atomic():
        locked = _locked_loan(loan)
        schedule = _payout_schedule(locked, entity=entity, on=disbursed_on)
        Instalment.objects.bulk_create([
            Instalment(
                entity=entity, client_id=locked.client_id, loan=locked, seq=row.seq, start_date=row.start_date,
                due_date=row.due_date, start_ord=row.start_date.toordinal(), due_ord=row.due_date.toordinal(),
                fee=row.fee, vat=row.vat, interest=row.interest, capital=row.capital, amount=row.amount,
            )
            for row in schedule.instalments
        ])
        last_due = schedule.instalments[-1].due_date
        locked.status = LoanStatus.ACTIVE
        locked.disbursed_on = disbursed_on
        locked.disbursed_by = actor
        locked.payout_account = payout_account
        locked.total_repayable = schedule.total_repayable
        locked.instalment_amount = schedule.instalment_amount
        locked.next_charge_on = add_months(last_due, 1)
        locked.save()
        client = locked.client
        client_status_apply(clients=Client.objects.filter(pk=client.pk, status=ClientStatus.INACTIVE),
                            status=ClientStatus.GOOD, actor=actor, rule=f"loan {locked.pk} disbursed")
        audit_record(action=AuditAction.LOAN_DISBURSED, actor=actor, entity=entity, target=locked,
                     subject=str(client.number), before={"status": LoanStatus.APPROVED},
                     after={"status": locked.status, "disbursed_on": disbursed_on.isoformat(),
                            "payout_account_id": payout_account.pk, "total_repayable": str(locked.total_repayable)})
    return locked


def _require_payout_account(loan: Loan, payout_account: ClientAccount | None) -> None:
    if (payout_account is None or payout_account.client_id != loan.client_id or not payout_account.is_active
            or payout_account.purpose not in (AccountPurpose.PAYOUT, AccountPurpose.BOTH)):
        raise error("payout_account", LoanError.PAYOUT_ACCOUNT)


def _payout_schedule(loan: Loan, *, entity: Entity, on: dt.date) -> Schedule:
    """The checks of paying `loan` out on `on` (status, borrower, signature, the caps as of that
    day, which depend on the client's other loans then) and, when it may be, its schedule."""
    _require_status(loan, (LoanStatus.APPROVED,), "disbursed")
    _require_borrower(loan.client)
    _require_signed(entity, loan)
    schedule = loan_schedule(loan=loan, start=on, country=entity.country)
    _check_caps(loan, credit_type=loan.product.credit_type, country=entity.country, on=on, schedule=schedule)
    return schedule


def loan_payout_check(*, loan: Loan, payout_account: ClientAccount | None, on: dt.date | None = None) -> None:
    """Raise the ValidationError `loan_disburse` would raise for paying `loan` out to
    `payout_account` on `on` (the entity's today), writing nothing; the disbursing user's limit
    is the caller's to check. A payout made outside the loan book (a mobile-money transfer, a
    payment-stream credit payment) checks this before any money leaves: the book marks the loan
    paid out only once the money has gone, and must not refuse it then. (A cap can start to apply
    after approval: another loan of the client paid out this year makes this one a repeat loan.)"""
    entity = loan.entity
    _require_payout_account(loan, payout_account)
    current = Loan.objects.select_related("client", "product").get(pk=loan.pk, entity_id=loan.entity_id)
    _payout_schedule(current, entity=entity, on=on or local_today(entity))


def disbursement_signing_block(*, entity: Entity, loan: Loan) -> str:
    """Why the loan may not be paid out yet under the entity's Loan OTP setup, or "" when it may.

    Only where an OTP applies to the agreement (Loan OTP or eSign Loan OTP on, the amount at or
    above the Loan OTP amount and the client's cellphone enrolled) must it be signed first: by the
    client's code, an override, or a declined OTP flagged for a hand signature. Without an OTP the
    client signs the paper agreement by hand and disbursement goes ahead as before."""
    # Imported here: signing builds on the loan models, so the loan book reads it only when needed.
    from imali.signing.rules import Requirement
    from imali.signing.selectors import signing_state
    from imali.signing.services import Document

    state = signing_state(entity=entity, document=Document(loan=loan))
    if state.decision.requirement not in (Requirement.OTP_REQUIRED, Requirement.OTP_OPTIONAL):
        return ""
    if state.signature is not None:
        return ""
    return (f"Loan {loan.pk}'s agreement is not signed yet: {state.decision.message} "
            f"Sign it on the loan's signing screen before disbursing.")


def _require_signed(entity: Entity, loan: Loan) -> None:
    block = disbursement_signing_block(entity=entity, loan=loan)
    if block:
        raise error("signature", LoanError.NOT_SIGNED, block)


def loan_cancel(*, loan: Loan, actor, reason: str) -> Loan:
    return _close(loan=loan, actor=actor, reason=reason, to=LoanStatus.CANCELLED,
                  allowed=(LoanStatus.APPLICATION, LoanStatus.APPROVED), action=AuditAction.LOAN_CANCELLED, verb="cancelled")


def loan_write_off(*, loan: Loan, actor, reason: str) -> Loan:
    return _close(loan=loan, actor=actor, reason=reason, to=LoanStatus.WRITTEN_OFF,
                  allowed=OPEN_STATUSES, action=AuditAction.LOAN_WRITTEN_OFF, verb="written off")


def loan_hand_over(*, loan: Loan, actor, reason: str) -> Loan:
    return _close(loan=loan, actor=actor, reason=reason, to=LoanStatus.HANDED_OVER,
                  allowed=(LoanStatus.ACTIVE,), action=AuditAction.LOAN_HANDED_OVER, verb="handed over")


def _close(*, loan, actor, reason, to, allowed, action, verb) -> Loan:
    reason = (reason or "").strip()
    if not reason:
        raise error("reason", LoanError.REQUIRED, "Give a reason.")
    with transaction.atomic():
        locked = _locked_loan(loan)
        _require_status(locked, allowed, verb)
        before = locked.status
        locked.status = to
        locked.status_reason = reason[:200]
        locked.closed_on = local_today(locked.entity)
        locked.save(update_fields=["status", "status_reason", "closed_on"])
        # Blacklisted and deceased stay what a person set; every other status follows the loan.
        client = Client.objects.filter(pk=locked.client_id).exclude(status__in=(ClientStatus.BLACKLISTED, ClientStatus.DECEASED))
        if to == LoanStatus.WRITTEN_OFF:
            # Off the book: its instalments no longer count as owed.
            Instalment.objects.filter(loan=locked).update(open=False)
            client_status_apply(clients=client, status=ClientStatus.BAD, new_loans_allowed=False, actor=actor,
                                rule=f"loan {locked.pk} written off: {locked.status_reason}")
        elif to == LoanStatus.HANDED_OVER:
            client_status_apply(clients=client, status=ClientStatus.HANDED_OVER, new_loans_allowed=False, actor=actor,
                                rule=f"loan {locked.pk} handed over: {locked.status_reason}")
        audit_record(action=action, actor=actor, entity=locked.entity, target=locked, subject=str(locked.client.number),
                     before={"status": before}, after={"status": to, "reason": locked.status_reason})
    return locked


# --- receipts ------------------------------------------------------------------------------------
PAYBACK_TYPES = frozenset(PaybackType.values)


def receipt_input(*, entity: Entity, amount: Any, payback_type: str, value_date: Any, external_reference: str = "",
                  today: dt.date | None = None) -> tuple[Decimal, str]:
    """The rules on a receipt's own fields (before any loan is read): the amount read strictly, a
    known payback type, a value date not in the entity's future. Returns the amount and the
    reference; raises the ValidationError naming each bad field. `today`: the entity's local day,
    when the caller read it once for many receipts."""
    found: dict[str, tuple[LoanError, str]] = {}
    money = _positive_money(amount, found)
    if payback_type not in PAYBACK_TYPES:
        found["payback_type"] = (LoanError.INVALID, "Choose a payback type.")
    elif refusal := payback_type_refusal(payback_type, country=entity.country):
        found["payback_type"] = (LoanError.INVALID, refusal)
    if not isinstance(value_date, dt.date):
        found["value_date"] = (LoanError.REQUIRED, "Give the date the money was received.")
    elif value_date > (today or local_today(entity)):
        # Money not yet received: it would mark instalments paid on a day still to come.
        found["value_date"] = (LoanError.OUT_OF_RANGE, "The date the money was received cannot be in the future.")
    if found:
        raise errors(found)
    return money, (external_reference or "").strip()


def receipt_post(
    *, entity: Entity, actor, loan: Loan, amount: Any, value_date: dt.date, payback_type: str,
    external_reference: str = "",
) -> Receipt:
    """Post a payment to a loan: allocated oldest instalment first, fees, VAT, interest, capital;
    what is left is change available. The same external reference is never posted twice. The rules
    are `receipt_input` and `posting.post_held`, shared with the set-based `receipts_post_held`."""
    if loan.entity_id != entity.pk:
        raise error("loan", LoanError.OTHER_ENTITY)
    money, reference = receipt_input(entity=entity, amount=amount, payback_type=payback_type, value_date=value_date,
                                     external_reference=external_reference)
    try:
        with transaction.atomic():
            locked = _locked_loan(loan)
            posting.require_status(locked, OPEN_STATUSES, "paid into")
            taken = bool(reference) and Receipt.objects.filter(entity=entity, external_reference=reference).exists()
            open_instalments = list(
                Instalment.objects.select_for_update().filter(loan=locked, open=True).order_by("due_date", "seq"))
            posted = posting.post_held(locked, open_instalments, money=money, value_date=value_date, reference=reference,
                                       reference_taken=taken)
            receipt = Receipt.objects.create(
                entity=entity, client_id=locked.client_id, loan=locked, amount=money, allocated=posted.allocated,
                change=posted.change, value_date=value_date, payback_type=payback_type, external_reference=reference,
                loan_status_before=posted.status_before, loan_paid_up_on_before=posted.paid_up_on_before, captured_by=actor,
            )
            ReceiptAllocation.objects.bulk_create([
                ReceiptAllocation(receipt=receipt, instalment=p.instalment, fee=p.line.fee, vat=p.line.vat,
                                  interest=p.line.interest, capital=p.line.capital, paid_on_before=p.paid_on_before)
                for p in posted.lines])
            Instalment.objects.bulk_update([p.instalment for p in posted.lines], INSTALMENT_PAID_FIELDS)
            totals = {"received_total": F("received_total") + posted.allocated,
                      "change_total": F("change_total") + posted.change}
            if posted.last_receipt_moved:
                totals.update(last_receipt_on=value_date, last_receipt_ord=day_number(value_date))
            Loan.objects.filter(pk=locked.pk).update(**totals)  # one statement for the loan's figures
            if posted.paid_up:
                locked.save(update_fields=["status", "paid_up_on"])
            audit_record(action=AuditAction.RECEIPT_POSTED, actor=actor, entity=entity, target=receipt,
                         subject=reference or str(locked.client.number), after=snapshot(receipt))
    except IntegrityError:
        # A concurrent posting of the same reference committed first: the constraint refused this one.
        if reference and Receipt.objects.filter(entity=entity, external_reference=reference).exists():
            raise error("external_reference", LoanError.DUPLICATE_REFERENCE,
                        f"Reference '{reference}' has been posted already.") from None
        raise
    return receipt


INSTALMENT_PAID_FIELDS = ["fee_paid", "vat_paid", "interest_paid", "capital_paid", "paid", "paid_on"]


# --- many receipts at once (a day's collections) -----------------------------------------------
def loans_hold(*, entity: Entity, loan_ids) -> dict[int, posting.HeldLoan]:
    """Lock the loans (in id order, so two posters never wait on each other crosswise) and read
    each one's open instalments in allocation order: the state `posting.post_held` changes for many
    receipts in the caller's transaction, to be written by `receipts_write_held`. Two queries per
    HOLD_BATCH loans, read without the ORM's per-value work (core.bulk)."""
    from django.db import connection

    held: dict[int, posting.HeldLoan] = {}
    ids = sorted(set(loan_ids))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    loan_select = bulk.select_sql(LOAN_HOLD_COLUMNS)
    inst_select = bulk.select_sql(INSTALMENT_HOLD_COLUMNS)
    loan_kinds = [kind for _, kind in LOAN_HOLD_COLUMNS]
    inst_kinds = [kind for _, kind in INSTALMENT_HOLD_COLUMNS]
    for start in range(0, len(ids), HOLD_BATCH):
        part = ids[start:start + HOLD_BATCH]
        marks = bulk.placeholders(len(part))
        for row in bulk.select_rows(f"SELECT {loan_select} FROM {Loan._meta.db_table} WHERE entity_id = %s AND id IN ({marks}) "
                                    f"ORDER BY id{lock}", [entity.pk, *part], loan_kinds):
            held[row[0]] = posting.HeldLoan(*row)
        for loan_id, *columns in bulk.select_rows(
                f"SELECT loan_id, {inst_select} FROM {Instalment._meta.db_table} WHERE loan_id IN ({marks}) AND open "
                f"ORDER BY loan_id, due_date, seq", part, ["int", *inst_kinds]):
            loan = held.get(loan_id)
            if loan is not None:
                loan.instalments.append(posting.HeldInstalment(*columns))
    return held


LOAN_HOLD_COLUMNS = (("id", "int"), ("client_id", "int"), ("status", "str"), ("disbursed_on", "date"), ("paid_up_on", "date"),
                     ("last_receipt_on", "date"), ("received_total", "money"), ("change_total", "money"))
INSTALMENT_HOLD_COLUMNS = (("id", "int"), ("start_date", "date"), ("due_date", "date"), ("fee", "money"), ("vat", "money"),
                           ("interest", "money"), ("capital", "money"), ("amount", "money"), ("fee_paid", "money"),
                           ("vat_paid", "money"), ("interest_paid", "money"), ("capital_paid", "money"), ("paid", "money"),
                           ("paid_on", "date"))
HOLD_BATCH = 5_000


@dataclass
class HeldReceipt:
    """A receipt `posting.post_held` posted onto a held loan, waiting to be written."""

    loan: posting.HeldLoan
    amount: Decimal
    value_date: dt.date
    payback_type: str
    reference: str
    posted: posting.Posted
    id: int | None = None


def receipts_write_held(*, entity: Entity, actor, receipts: list[HeldReceipt]) -> None:
    """Write receipts posted in memory on loans held by `loans_hold`, in the caller's transaction:
    the receipt and allocation rows in bulk, then each changed instalment and loan once with its
    final figures (core.bulk). Sets each HeldReceipt's id. What one `receipt_post` per receipt
    writes, figure for figure; the audit is the caller's (one entry for the run, not per receipt)."""
    if not receipts:
        return
    ids = bulk.new_ids(Receipt, len(receipts))
    created = bulk.stamp(timezone.now())
    captured_by = actor.pk if getattr(actor, "pk", None) else None
    receipt_rows, allocation_rows = [], []
    instalments: dict[int, posting.HeldInstalment] = {}
    loans: dict[int, posting.HeldLoan] = {}
    for new_id, held in zip(ids, receipts, strict=True):
        held.id = new_id
        posted, loan = held.posted, held.loan
        receipt_rows.append((new_id, entity.pk, loan.client_id, loan.pk, held.amount, posted.allocated, posted.change,
                             held.value_date, held.payback_type, held.reference, posted.status_before,
                             posted.paid_up_on_before, False, "", captured_by, created))
        for p in posted.lines:
            line = p.line
            allocation_rows.append((new_id, p.instalment.pk, line.fee, line.vat, line.interest, line.capital, p.paid_on_before))
            instalments[p.instalment.pk] = p.instalment
        loans[loan.pk] = loan
    bulk.insert_rows(Receipt, RECEIPT_COLUMNS, receipt_rows)
    bulk.insert_rows(ReceiptAllocation, ALLOCATION_COLUMNS, allocation_rows)
    bulk.update_rows(Instalment, INSTALMENT_PAID_FIELDS,
                     [(i.pk, i.fee_paid, i.vat_paid, i.interest_paid, i.capital_paid, i.paid, i.paid_on)
                      for i in instalments.values()],
                     casts=("numeric", "numeric", "numeric", "numeric", "numeric", "date"))
    bulk.update_rows(Loan, LOAN_TOTAL_FIELDS,
                     [(loan.pk, loan.received_total, loan.change_total, loan.last_receipt_on, day_number(loan.last_receipt_on),
                       loan.status, loan.paid_up_on, day_number(loan.paid_up_on)) for loan in loans.values()],
                     casts=("numeric", "numeric", "date", "integer", "text", "date", "integer"))


RECEIPT_COLUMNS = ("id", "entity_id", "client_id", "loan_id", "amount", "allocated", "change", "value_date", "payback_type",
                   "external_reference", "loan_status_before", "loan_paid_up_on_before", "is_reversed", "reversal_reason",
                   "captured_by_id", "created_at")
ALLOCATION_COLUMNS = ("receipt_id", "instalment_id", "fee", "vat", "interest", "capital", "paid_on_before")
LOAN_TOTAL_FIELDS = ["received_total", "change_total", "last_receipt_on", "last_receipt_ord", "status", "paid_up_on",
                     "paid_up_ord"]


def receipt_reverse(*, receipt: Receipt, actor, reason: str) -> Receipt:
    """Undo a receipt exactly: every instalment, the loan's status and paid-up date go back to
    what they were before it (later receipts keep their own allocations)."""
    reason = (reason or "").strip()
    if not reason:
        raise error("reason", LoanError.REQUIRED, "Give a reason for the reversal.")
    with transaction.atomic():
        locked_loan = _locked_loan(receipt.loan)
        locked = Receipt.objects.select_for_update().get(pk=receipt.pk, entity_id=receipt.entity_id)
        if locked.is_reversed:
            raise error("receipt", LoanError.ALREADY_REVERSED)
        if locked.change > locked_loan.change_total:
            # Part of this receipt's change has been paid back to the client: reversing the receipt
            # now would leave less than nothing available, so the refund must be reversed first.
            raise error("receipt", LoanError.CHANGE_PAID_OUT,
                        f"{locked.change - locked_loan.change_total:,.2f} of this receipt's change of {locked.change:,.2f} "
                        f"has been paid back to the client; reverse that change refund first.")
        lines = list(locked.allocations.all())
        instalments = {i.pk: i for i in Instalment.objects.select_for_update().filter(pk__in=[a.instalment_id for a in lines])}
        for line in lines:
            inst = instalments[line.instalment_id]
            inst.fee_paid -= line.fee
            inst.vat_paid -= line.vat
            inst.interest_paid -= line.interest
            inst.capital_paid -= line.capital
            inst.paid -= line.total
            inst.paid_on = line.paid_on_before if inst.paid == inst.amount else None
        Instalment.objects.bulk_update(list(instalments.values()),
                                       ["fee_paid", "vat_paid", "interest_paid", "capital_paid", "paid", "paid_on"])
        if locked_loan.default_since is not None and locked_loan.default_balance is not None:
            # In duplum: charges this receipt had paid ahead were kept whole when the loan entered
            # default (what was paid is never cut); unpaid again, they must fit under the cap.
            from .daily_close import trim_scheduled_charges

            trim_scheduled_charges(locked_loan)
        if locked_loan.status == LoanStatus.PAID_UP and locked.loan_status_before != LoanStatus.PAID_UP:
            locked_loan.status = locked.loan_status_before
            locked_loan.paid_up_on = locked.loan_paid_up_on_before
            locked_loan.save(update_fields=["status", "paid_up_on"])
        last_receipt_on = (Receipt.objects.filter(loan=locked_loan, is_reversed=False).exclude(pk=locked.pk)
                           .aggregate(d=Max("value_date"))["d"])
        Loan.objects.filter(pk=locked_loan.pk).update(
            received_total=F("received_total") - locked.allocated, change_total=F("change_total") - locked.change,
            last_receipt_on=last_receipt_on, last_receipt_ord=day_number(last_receipt_on),
        )
        locked.is_reversed = True
        locked.reversed_at = timezone.now()
        locked.reversed_by = actor
        locked.reversal_reason = reason[:200]
        locked.save(update_fields=["is_reversed", "reversed_at", "reversed_by", "reversal_reason"])
        audit_record(action=AuditAction.RECEIPT_REVERSED, actor=actor, entity=locked.entity, target=locked,
                     subject=locked.external_reference or str(locked_loan.client.number),
                     before={"is_reversed": False}, after={"is_reversed": True, "reason": locked.reversal_reason})
    return locked


# --- non-loan debits -----------------------------------------------------------------------------
def non_loan_debit_add(*, entity: Entity, actor, client: Client, description: str, amount: Any,
                       debit_date: dt.date) -> NonLoanDebit:
    """A debt of the client that is not a loan instalment; it counts as non-loan debt until settled."""
    if client.entity_id != entity.pk:
        raise error("client", LoanError.OTHER_ENTITY)
    found: dict[str, tuple[LoanError, str]] = {}
    description = " ".join(str(description or "").split())
    if not description:
        found["description"] = (LoanError.REQUIRED, "This field is required.")
    elif len(description) > 120:
        found["description"] = (LoanError.INVALID, "At most 120 characters.")
    money = _positive_money(amount, found)
    if not isinstance(debit_date, dt.date):
        found["debit_date"] = (LoanError.REQUIRED, "Give the date of the debit.")
    if found:
        raise errors(found)
    with transaction.atomic():
        debit = NonLoanDebit.objects.create(entity=entity, client=client, description=description,
                                            amount=money, debit_date=debit_date, created_by=actor)
        audit_record(action=AuditAction.NON_LOAN_DEBIT_ADDED, actor=actor, entity=entity, target=debit,
                     subject=str(client.number), after=snapshot(debit))
    return debit


def non_loan_debit_settle(*, debit: NonLoanDebit, actor, settled_on: dt.date) -> NonLoanDebit:
    if not isinstance(settled_on, dt.date):
        raise error("settled_on", LoanError.REQUIRED, "Give the date the debit was settled.")
    with transaction.atomic():
        locked = NonLoanDebit.objects.select_for_update().select_related("client").get(pk=debit.pk, entity_id=debit.entity_id)
        if locked.settled_on is not None:
            raise error("debit", LoanError.ALREADY_SETTLED, f"The debit was settled on {locked.settled_on:%Y-%m-%d} already.")
        if settled_on < locked.debit_date:
            raise error("settled_on", LoanError.OUT_OF_RANGE,
                        f"A debit of {locked.debit_date:%Y-%m-%d} cannot be settled before that date.")
        locked.settled_on = settled_on
        locked.settled_by = actor if getattr(actor, "pk", None) else None
        locked.save(update_fields=["settled_on", "settled_by"])
        audit_record(action=AuditAction.NON_LOAN_DEBIT_SETTLED, actor=actor, entity=locked.entity, target=locked,
                     subject=str(locked.client.number), before={"settled_on": None},
                     after={"settled_on": settled_on.isoformat(), "amount": str(locked.amount)})
    return locked


# --- change refunds ------------------------------------------------------------------------------
def change_refund(*, entity: Entity, actor, loan: Loan, amount: Any, paid_on: dt.date, method: str,
                  reason: str, reference: str = "") -> ChangeRefund:
    """Pay change available on a loan back to the client. Under the loan's row lock the amount is
    checked against the change available and taken off it in the same transaction, so the loan's
    change_total is always receipts' change less refunds (and never below zero)."""
    if loan.entity_id != entity.pk:
        raise error("loan", LoanError.OTHER_ENTITY)
    found: dict[str, tuple[LoanError, str]] = {}
    money = _positive_money(amount, found)
    if method not in RefundMethod.values:
        found["method"] = (LoanError.INVALID, "Choose how the change is paid: cash, EFT or mobile money.")
    if not isinstance(paid_on, dt.date):
        found["paid_on"] = (LoanError.REQUIRED, "Give the date the change is paid.")
    reason = " ".join(str(reason or "").split())
    if not reason:
        found["reason"] = (LoanError.REQUIRED, "Give a reason.")
    reference = (reference or "").strip()
    if len(reference) > 64:
        found["reference"] = (LoanError.INVALID, "At most 64 characters.")
    if found:
        raise errors(found)
    with transaction.atomic():
        locked = _locked_loan(loan)
        if money > locked.change_total:
            raise error("amount", LoanError.OVER_CHANGE_AVAILABLE,
                        f"{money:,.2f} is more than the change available on loan {locked.pk} ({locked.change_total:,.2f}).")
        refund = ChangeRefund.objects.create(
            entity=entity, client_id=locked.client_id, loan=locked, amount=money, paid_on=paid_on, method=method,
            reference=reference, reason=reason[:200], paid_by=actor if getattr(actor, "pk", None) else None)
        Loan.objects.filter(pk=locked.pk).update(change_total=F("change_total") - money)
        audit_record(action=AuditAction.CHANGE_REFUNDED, actor=actor, entity=entity, target=refund,
                     subject=str(locked.client.number),
                     before={"loan": locked.pk, "change_available": str(locked.change_total)},
                     after={**snapshot(refund), "change_available": str(locked.change_total - money)})
    return refund


def change_refund_reverse(*, refund: ChangeRefund, actor, reason: str) -> ChangeRefund:
    """Undo a change refund exactly: its amount is change available on the loan again."""
    reason = " ".join(str(reason or "").split())
    if not reason:
        raise error("reason", LoanError.REQUIRED, "Give a reason for the reversal.")
    with transaction.atomic():
        locked_loan = _locked_loan(refund.loan)
        locked = ChangeRefund.objects.select_for_update().get(pk=refund.pk, entity_id=refund.entity_id)
        if locked.is_reversed:
            raise error("refund", LoanError.ALREADY_REVERSED, "The change refund has been reversed already.")
        Loan.objects.filter(pk=locked_loan.pk).update(change_total=F("change_total") + locked.amount)
        locked.is_reversed = True
        locked.reversed_at = timezone.now()
        locked.reversed_by = actor if getattr(actor, "pk", None) else None
        locked.reversal_reason = reason[:200]
        locked.save(update_fields=["is_reversed", "reversed_at", "reversed_by", "reversal_reason"])
        audit_record(action=AuditAction.CHANGE_REFUND_REVERSED, actor=actor, entity=locked.entity, target=locked,
                     subject=str(locked_loan.client.number),
                     before={"is_reversed": False, "change_available": str(locked_loan.change_total)},
                     after={"is_reversed": True, "reason": locked.reversal_reason,
                            "change_available": str(locked_loan.change_total + locked.amount)})
    return locked


