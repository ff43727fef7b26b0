"""Reads of client marketing: which clients a data set's filters choose (one query, the book rules
as subqueries), every column of the seed for all of them at once (that query's joined client
columns plus the whole-book figures of `loans.selectors.portfolio_snapshot`: a grouped read per
table, never a query per client), and the kept data sets, their rows paged and sorted, streamed
for exports and sends."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery

from imali.clients.models import (
    AccountKind,
    AccountPurpose,
    AppointmentType,
    BankAccountType,
    Client,
    ClientAccount,
    ClientNote,
    ClientStatus,
    EmployerClassification,
    PaymentFrequency,
    PaymentMoveDirection,
)
from imali.core.idnumbers import Gender, IdType
from imali.loans.models import (
    OPEN_STATUSES,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    PaybackType,
)
from imali.loans.selectors import ClientFigures, portfolio_snapshot
from imali.tenancy.models import Entity

from .columns import KEYS
from .models import CustomMessage, DataSet, DataSetRow

# A selection of up to this many clients reads the loan figures of those clients only; a larger one
# reads the whole book once (one grouped pass is cheaper than a long IN list), as batches do.
FIGURES_BY_ID_UP_TO = 2000
HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def local_midnight(entity: Entity, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(entity.time_zone))


# --- the filters as one query ------------------------------------------------------------------
def _unpaid(entity: Entity) -> QuerySet[Instalment]:
    # Written as the partial index instalment_unpaid_cover states its condition.
    return Instalment.objects.filter(entity=entity, open=True, paid__lt=F("amount"))


def _overdue_clients(entity: Entity, as_of: dt.date) -> QuerySet:
    return _unpaid(entity).filter(due_ord__lt=as_of.toordinal()).order_by().values("client_id")


def _months_outstanding_clients(entity: Entity, as_of: dt.date, months: str) -> QuerySet:
    """Clients with something still to pay on the book whose last unpaid instalment falls due within
    `months` × 30 days of as_of (or already fell due); "all": everything on the book."""
    grouped = _unpaid(entity).order_by().values("client_id").annotate(last_due=Max("due_ord"))
    if months != "all":
        grouped = grouped.filter(last_due__lte=as_of.toordinal() + 30 * int(months))
    return grouped.values("client_id")


def _totally_paid_clients(entity: Entity, start: dt.date, end: dt.date) -> QuerySet:
    """Clients with nothing on the book whose last loan was paid up on a day of the range (the
    whole-book figures' "date totally paid")."""
    return (Loan.objects.filter(entity=entity).order_by().values("client_id")
            .annotate(on_book=Count("id", filter=Q(status__in=OPEN_STATUSES)),
                      last_paid=Max("paid_up_ord", filter=Q(status=LoanStatus.PAID_UP)))
            .filter(on_book=0, last_paid__gte=start.toordinal(), last_paid__lte=end.toordinal())
            .values("client_id"))


def _account(entity_filters: Mapping) -> QuerySet[ClientAccount]:
    """The client's active bank accounts the filters speak of (bank, payout / payback)."""
    accounts = ClientAccount.objects.filter(client_id=OuterRef("pk"), kind=AccountKind.BANK, is_active=True)
    if entity_filters.get("bank"):
        accounts = accounts.filter(bank_name=entity_filters["bank"])
    if entity_filters.get("bank_account_type"):
        accounts = accounts.filter(purpose__in=[entity_filters["bank_account_type"], AccountPurpose.BOTH])
    return accounts


def dataset_selection(*, entity: Entity, filters: Mapping, as_of: dt.date) -> QuerySet[Client]:
    """The clients of `entity` every filter holds for (filters already checked), by client number:
    one query. Never a deceased client; without the entity's "marketing consent not required",
    only clients who gave marketing consent."""
    q = Q(entity=entity) & ~Q(status=ClientStatus.DECEASED)
    if not entity.marketing_consent_not_required:
        q &= Q(marketing_consent=True)
    f = filters
    for name, lookup in (("branch", "branch_id"), ("region", "branch__region_id"), ("created_by", "created_by_id"),
                         ("salesperson", "salesperson_id"), ("client_status", "status"),
                         ("payment_frequency", "payment_frequency"), ("area", "area"), ("payback_type", "payback_type"),
                         ("employer", "employer_id"), ("paypoint", "paypoint_id"),
                         ("employer_classification", "employer__classification"),
                         ("economic_sector", "employer__economic_sector")):
        if f.get(name) not in (None, ""):
            q &= Q(**{lookup: f[name]})
    if f.get("number_from") is not None:
        q &= Q(number__gte=f["number_from"])
    if f.get("number_to") is not None:
        q &= Q(number__lte=f["number_to"])
    if f.get("created_from"):
        q &= Q(created_at__gte=local_midnight(entity, dt.date.fromisoformat(f["created_from"])))
    if f.get("created_to"):
        q &= Q(created_at__lt=local_midnight(entity, dt.date.fromisoformat(f["created_to"]) + dt.timedelta(days=1)))
    if f.get("bank") or f.get("bank_account_type"):
        q &= Q(Exists(_account(f)))
    if f.get("overdues") == "exclude":
        q &= ~Q(pk__in=_overdue_clients(entity, as_of))
    elif f.get("overdues") == "only":
        q &= Q(pk__in=_overdue_clients(entity, as_of))
    # Totally paid and months outstanding (seed 002): either alone restricts to its own clients;
    # both set, a client of either is kept.
    paid_range = f.get("paid_from") and f.get("paid_to")
    months = f.get("months_outstanding") or ""
    population = Q()
    if paid_range:
        population |= Q(pk__in=_totally_paid_clients(entity, dt.date.fromisoformat(f["paid_from"]),
                                                     dt.date.fromisoformat(f["paid_to"])))
    if months:
        population |= Q(pk__in=_months_outstanding_clients(entity, as_of, months))
    q &= population
    if f.get("only_change_and_debt"):
        change = Loan.objects.filter(entity=entity, client_id=OuterRef("pk"), change_total__gt=0)
        debt = NonLoanDebit.objects.filter(entity=entity, client_id=OuterRef("pk"), settled_on__isnull=True)
        q &= Q(Exists(change)) | Q(Exists(debt))
    return Client.objects.filter(q).order_by("number")


# --- every column ------------------------------------------------------------------------------
def _labels(choices) -> dict:
    return {value: str(label) for value, label in choices.choices}


_ID_TYPES, _GENDERS, _STATUSES = _labels(IdType), _labels(Gender), _labels(ClientStatus)
_FREQUENCIES, _MOVES, _PAYBACK = _labels(PaymentFrequency), _labels(PaymentMoveDirection), _labels(PaybackType)
_ACCOUNT_TYPES, _CLASSES, _APPOINTMENTS = _labels(BankAccountType), _labels(EmployerClassification), _labels(AppointmentType)

# The client's own columns, read by the selection query (joins to branch, salesperson, employer and
# paypoint; the bank account and the last notes as subqueries), in this order.
_CLIENT_VALUES = (
    "id", "branch__name", "number", "title", "initials", "full_names", "name", "surname", "id_number", "id_type",
    "gender", "home_phone", "work_phone", "cellphone", "tax_number", "original_client_number", "status",
    "salesperson__first_name", "salesperson__last_name", "salesperson__username", "marketing_info", "area",
    "insolvent", "garnishee", "salary", "bonus_month", "payment_move_direction", "payment_frequency", "payment_day",
    "credit_limit", "available_for_instalment", "payback_type", "email", "acc_bank", "acc_type", "acc_number",
    "acc_branch", "employer__name", "employer__classification", "employee_number", "paypoint__number", "occupation",
    "other_employer_reference", "contract_expiry_date", "employer__telephone", "commencement_of_service",
    "appointment_type", "physical_address", "postal_address", "historically_disadvantaged",
    "budget_available_for_instalment", "last_note", "last_display_note",
)


def client_columns(selection: QuerySet[Client], *, filters: Mapping) -> QuerySet:
    """The selection with the columns of _CLIENT_VALUES: one query, streamed by the caller."""
    account = _account(filters).order_by("id")
    notes = ClientNote.objects.filter(client_id=OuterRef("pk")).order_by("-created_at", "-id")
    return selection.annotate(
        acc_bank=Subquery(account.values("bank_name")[:1]), acc_type=Subquery(account.values("account_type")[:1]),
        acc_number=Subquery(account.values("account_number")[:1]),
        acc_branch=Subquery(account.values("branch_code")[:1]),
        last_note=Subquery(notes.values("text")[:1]),
        last_display_note=Subquery(notes.filter(is_display_note=True).values("text")[:1]),
    ).values_list(*_CLIENT_VALUES)


def _money(value) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value).quantize(CENT)  # SQLite hands decimals back as floats' text


def _pct(part, whole) -> Decimal | None:
    if part is None or not whole:
        return None
    return (HUNDRED * Decimal(part) / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)


def _salesperson(first: str | None, last: str | None, username: str | None) -> str:
    full = " ".join(p for p in (first, last) if p)
    return full or (username or "")


def dataset_row_values(row: tuple, figures: ClientFigures | None, *, with_settlement: bool) -> tuple:
    """One client's columns in columns.KEYS order, from its _CLIENT_VALUES row and its figures."""
    (_cid, branch, number, title, initials, full_names, name, surname, id_number, id_type, gender, home_phone,
     work_phone, cellphone, tax_number, original_number, status, sp_first, sp_last, sp_user, marketing_info, area,
     insolvent, garnishee, salary, bonus_month, move, frequency, payment_day, credit_limit, available, payback, email,
     bank, account_type, account_number, bank_branch, employer, classification, employee_number, paypoint, occupation,
     other_ref, contract_expiry, employer_tel, commencement, appointment, physical, postal, disadvantaged,
     budget_available, last_note, last_display_note) = row
    available = _money(available)
    salary = _money(salary)
    if figures is None:
        fig = (None,) * 23
        borrowed = False
    else:
        fig = figures.values()
        borrowed = fig[18] is not None  # last_agreement_date
    # ClientFigures.FIELDS: client_id, outstanding, arrears_amount, arrears_days, arrears_months, next_due_date,
    # next_amount_due, due_30, due_60, due_90, due_120, due_120_plus, settlement, pct_of_all_capital_pd,
    # last_receipt_date, days_since_last_receipt, change_available, non_loan_debt, last_agreement_date,
    # last_agreement_product, days_since_last_loan, open_loans, date_totally_paid
    zero = Decimal("0.00")

    def owed(i: int) -> Decimal:
        return fig[i] if fig[i] is not None else zero

    return (
        branch or "", number, title or "", initials or "", full_names or "", name or "", surname or "", id_number or "",
        _ID_TYPES.get(id_type, id_type or ""), _GENDERS.get(gender, gender or ""), home_phone or "", work_phone or "",
        cellphone or "", tax_number or "", original_number or "", _STATUSES.get(status, status or ""),
        _salesperson(sp_first, sp_last, sp_user), marketing_info or "", area or "", insolvent, garnishee, salary,
        bonus_month, _MOVES.get(move, move or ""), _FREQUENCIES.get(frequency, frequency or ""), payment_day,
        _money(credit_limit), available, _pct(available, salary), _PAYBACK.get(payback, payback or ""), email or "",
        bank or "", _ACCOUNT_TYPES.get(account_type, account_type or ""), account_number or "", bank_branch or "",
        employer or "", _CLASSES.get(classification, classification or ""), employee_number or "", paypoint or "",
        occupation or "", other_ref or "", contract_expiry, employer_tel or "", commencement,
        _APPOINTMENTS.get(appointment, appointment or ""),
        fig[14], fig[15], fig[18], fig[19] or "", fig[20],
        owed(1), fig[5], fig[6] if fig[5] is not None else None, owed(16), owed(17),
        physical or "", postal or "", disadvantaged, _money(budget_available),
        owed(7), owed(8), owed(9), owed(10), owed(11),
        fig[13] if borrowed else None,
        last_note or "", last_display_note or "",
        owed(12) if with_settlement else None,
    )


def dataset_rows(*, entity: Entity, filters: Mapping, as_of: dt.date, with_settlement: bool = False,
                 on_total=None) -> Iterator[tuple]:
    """Every chosen client's columns (columns.KEYS order) with its client id in front, by client
    number. Queries: the count (when `on_total` wants it), the selection with its columns (one,
    streamed) and the loan figures (portfolio_snapshot: by client ids up to FIGURES_BY_ID_UP_TO
    clients, the whole book above) — the same number of queries for 1 client or a million."""
    selection = dataset_selection(entity=entity, filters=filters, as_of=as_of)
    rows = client_columns(selection, filters=filters).iterator(chunk_size=5000)
    head: list[tuple] = []
    for row in rows:
        head.append(row)
        if len(head) > FIGURES_BY_ID_UP_TO:
            break
    small = len(head) <= FIGURES_BY_ID_UP_TO
    if on_total is not None:
        on_total(len(head) if small else selection.count())
    if not head:
        return
    figures = portfolio_snapshot(entity=entity, as_of=as_of, client_ids=[r[0] for r in head] if small else None)
    get = figures.get
    for row in head:
        yield (row[0], *dataset_row_values(row, get(row[0]), with_settlement=with_settlement))
    if not small:
        for row in rows:
            yield (row[0], *dataset_row_values(row, get(row[0]), with_settlement=with_settlement))


# --- kept data sets -----------------------------------------------------------------------------
def dataset_list(*, entity: Entity) -> QuerySet[DataSet]:
    return DataSet.objects.filter(entity=entity).select_related("created_by")


def dataset_get(*, entity: Entity, dataset_id: int) -> DataSet:
    return DataSet.objects.select_related("created_by").get(entity=entity, pk=dataset_id)


SORTABLE = frozenset(KEYS)


def dataset_row_page(*, dataset: DataSet, sort: str = "", descending: bool = False) -> QuerySet[DataSetRow]:
    """The data set's rows in the chosen column's order (ties by collection order); the caller pages."""
    rows = DataSetRow.objects.filter(dataset=dataset)
    if sort in SORTABLE:
        key = F(sort).desc(nulls_last=True) if descending else F(sort).asc(nulls_first=True)
        return rows.order_by(key, "-seq" if descending else "seq")
    return rows.order_by("seq")


# Rows an export (and a send) holds at once, whatever the size of the data set.
EXPORT_CHUNK_ROWS = 2000


def dataset_export_rows(*, dataset: DataSet, keys: tuple[str, ...]) -> Iterator[tuple]:
    """The data set's rows as value tuples of `keys`, by collection order, streamed in chunks."""
    return (DataSetRow.objects.filter(dataset=dataset).order_by("seq").values_list(*keys)
            .iterator(chunk_size=EXPORT_CHUNK_ROWS))


def custom_message_list(*, entity: Entity, channel: str | None = None, active_only: bool = False) -> QuerySet[CustomMessage]:
    qs = CustomMessage.objects.filter(entity=entity)
    if channel:
        qs = qs.filter(channel=channel)
    if active_only:
        qs = qs.filter(is_active=True)
    return qs


def area_choices(*, entity: Entity) -> list[str]:
    """The client areas the entity's clients are in (one query)."""
    return list(Client.objects.filter(entity=entity).exclude(area="").order_by("area").values_list("area", flat=True)
                .distinct())


def bank_choices(*, entity: Entity) -> list[str]:
    return list(ClientAccount.objects.filter(client__entity=entity, kind=AccountKind.BANK).exclude(bank_name="")
                .order_by("bank_name").values_list("bank_name", flat=True).distinct())
