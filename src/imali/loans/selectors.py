"""Reads of the loan book. The whole-book figures are set-based: one grouped query per table
(instalments, loans, receipts, non-loan debits), never a query or a Python loop per loan.

Definitions (the pure versions are in `rules`; tests hold these queries to them):
- outstanding: amount − paid over the instalments of loans on the book (active, handed over);
- arrears: what is unpaid on instalments whose due date is before `as_of`; days in arrears count
  from the oldest such due date; months in arrears are 1–30 days = 1, 31–60 = 2, ...;
- next date / amount due: the earliest due date on or after `as_of` with something unpaid, and
  everything unpaid on that date;
- obligation buckets: what is unpaid on instalments due 0–30, 31–60, 61–90, 91–120 and 121+ days
  after `as_of` (arrears are not in the buckets; they are the arrears figure);
- settlement at `as_of` (rules.settlement_amount, per loan on the book, never below zero): all
  that is due by `as_of`, and of what falls due later its capital and the interest accrued so far
  (pro rata by days, rounded half up to the cent), less what was paid on those instalments;
- %OfAllCapitalPD: as the marketing data set defines it, receipts ÷ loan totals: 100 × receipts
  allocated to loans (not reversed; change excluded) ÷ total repayable of the client's disbursed loans;
- date totally paid: the last paid-up date, for a client with nothing left on the book.
"""

from __future__ import annotations

import datetime as dt
import gc
from decimal import Decimal
from itertools import compress, repeat
from operator import add, floordiv, itemgetter, mul

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet

from imali.core.money import aggregate_money
from imali.tenancy.models import Entity

from . import rules
from .models import (
    OPEN_STATUSES,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    Product,
    Receipt,
)

ZERO = Decimal("0.00")
CENT = Decimal("0.01")

# The latest agreement of a client is the maximum over its paid-out loans of one integer that packs
# (day number, loan id, product id), so that of two loans paid out on one day the later one wins and
# its product comes with it: day × 10**13 + loan id × 10**4 + product id. That fits a signed 64-bit
# integer (both databases' integers) for day numbers below 922,337 (the year 2526), loan ids below
# 10**9 and product ids below 10**4; a book outside those bounds takes the latest loan id alone and
# looks its product up (_latest_products).
_DAY_SHIFT, _LOAN_SHIFT = 10**13, 10**4
_PACKED_LOAN_IDS, _PACKED_PRODUCT_IDS = 10**9, 10**4

# The rows of the grouped queries, as the snapshot keeps them (money in whole cents, days as day numbers).
# unpaid: client, outstanding, arrears, oldest unpaid day, next day due, amount due then,
#         due in 0–30, 31–60, 61–90, 91–120, 121+ days, settlement, count paid beyond capital ahead
# loans:  client, latest agreement day, its product (or loan id, see above), open loans, date totally
#         paid (the last paid-up day, for a client with no loan on the book), total repayable of disbursed
#         loans, last receipt day, change, received (0 where the total is 0: no percentage)
_U_OUTSTANDING, _U_ARREARS, _U_OLDEST, _U_NEXT_DAY, _U_NEXT_AMOUNT = 1, 2, 3, 4, 5
_U_BUCKETS = {"due_30": 6, "due_60": 7, "due_90": 8, "due_120": 9, "due_120_plus": 10}
_U_SETTLEMENT = 11
_U_PAID_BEYOND_CAPITAL = 12  # instalments not yet due with more than their capital paid (a flag)
(_L_LATEST_DAY, _L_LATEST_PRODUCT, _L_OPEN, _L_TOTALLY_PAID, _L_TOTAL, _L_LAST_RECEIPT, _L_CHANGE,
 _L_RECEIVED) = range(1, 9)
NO_UNPAID = (None, 0, 0, None, None, 0, 0, 0, 0, 0, 0, 0, 0)
NO_LOANS = (None, None, None, 0, None, 0, None, 0, 0)


class _Percents(dict):
    """Every percentage from 0.00 to 100.00 by its hundredths: a constant table of 10,001 Decimals,
    made (in C) on first use. A percentage beyond it (a client paid beyond the loans' total) is
    made when asked for and not kept."""

    def __missing__(self, hundredths: int) -> Decimal:
        if not self:
            self.update(zip(range(10001), map(CENT.__mul__, range(10001)), strict=True))
            return self[hundredths]
        return CENT * hundredths


_PERCENTS = _Percents()


class _Lookup(dict):
    """A value → what it stands for, each made once by `make` and then read by subscript (C-level
    in a map): the days and day counts a book's figures name are few, its clients many."""

    def __init__(self, make, known: dict):
        super().__init__(known)
        self.make = make

    def __missing__(self, value):
        found = self[value] = self.make(value)
        return found


class _Book:
    """One snapshot: every client's rows as the grouped queries gave them (exact cents, day numbers,
    counts), in one order, and each figure made from them (Decimals, dates, names) a whole column at
    a time when it is first read. Reading a figure of one client makes that figure for every client
    of the snapshot, by C-level maps over the column (no Python call per client), which is what a
    consumer of a whole book does, and cheap beside the queries for one client."""

    __slots__ = ("aso", "ids", "unpaid", "loans", "debts", "products", "columns", "rows", "money", "dates", "days_since")

    def __init__(self, *, as_of: dt.date, ids: list[int], unpaid: list[tuple], loans: list[tuple], debts: list[int],
                 products: dict[int, str]):
        self.aso = aso = as_of.toordinal()
        self.ids, self.unpaid, self.loans, self.debts = ids, unpaid, loans, debts
        self.products = {None: "", **products}
        self.columns: dict[str, list] = {}
        self.rows: list[tuple] | None = None  # every figure of every client, made on the first values()
        # Whole cents → Decimal with two places (exact: an integer times 0.01), each distinct amount
        # made once for the whole book: amounts repeat (most are zero, instalments of one size are
        # many, and a client's next amount is often the 0–30 bucket and the outstanding too).
        self.money = _Lookup(CENT.__mul__, {0: ZERO})
        self.dates = _Lookup(dt.date.fromordinal, {None: None})
        self.days_since = _Lookup(lambda day: aso - day, {None: None})

    def column(self, name: str) -> list:
        found = self.columns.get(name)
        if found is None:
            found = self.columns[name] = getattr(self, "_" + name)()
        return found

    def values(self) -> list[tuple]:
        if self.rows is None:
            # Tens of thousands of tuples at once: the cyclic collector would walk the book's rows
            # for each few hundred of them (see portfolio_snapshot).
            collecting = gc.isenabled()
            gc.disable()
            try:
                self.rows = list(zip(*(self.column(name) for name in ClientFigures.FIELDS), strict=True))
            finally:
                if collecting:
                    gc.enable()
        return self.rows

    # --- each figure for every client, in the snapshot's order ---
    def _u(self, index: int) -> tuple:
        # The rows turned into columns once (one C-level pass), rather than a pass per figure.
        if "_unpaid" not in self.columns:
            self.columns["_unpaid"] = list(zip(*self.unpaid, strict=True)) or [()] * len(NO_UNPAID)
        return self.columns["_unpaid"][index]

    def _l(self, index: int) -> tuple:
        if "_loans" not in self.columns:
            self.columns["_loans"] = list(zip(*self.loans, strict=True)) or [()] * len(NO_LOANS)
        return self.columns["_loans"][index]

    def _money(self, cents) -> list:
        return list(map(self.money.__getitem__, cents))

    def _client_id(self) -> list:
        return self.ids

    def _outstanding(self) -> list:
        return self._money(self._u(_U_OUTSTANDING))

    def _arrears_amount(self) -> list:
        return self._money(self._u(_U_ARREARS))

    def _arrears_days(self) -> list:
        # The oldest unpaid day is before as_of by definition (None: nothing in arrears).
        return list(map(_Lookup(self.days_since.make, {None: 0}).__getitem__, self._u(_U_OLDEST)))

    def _arrears_months(self) -> list:
        return list(map(_Lookup(rules.months_in_arrears, {}).__getitem__, self.column("arrears_days")))

    def _next_due_date(self) -> list:
        return list(map(self.dates.__getitem__, self._u(_U_NEXT_DAY)))

    def _next_amount_due(self) -> list:
        return self._money(self._u(_U_NEXT_AMOUNT))

    def _due_30(self) -> list:
        return self._money(self._u(_U_BUCKETS["due_30"]))

    def _due_60(self) -> list:
        return self._money(self._u(_U_BUCKETS["due_60"]))

    def _due_90(self) -> list:
        return self._money(self._u(_U_BUCKETS["due_90"]))

    def _due_120(self) -> list:
        return self._money(self._u(_U_BUCKETS["due_120"]))

    def _due_120_plus(self) -> list:
        return self._money(self._u(_U_BUCKETS["due_120_plus"]))

    def _settlement(self) -> list:
        return self._money(self._u(_U_SETTLEMENT))

    def _pct_of_all_capital_pd(self) -> list:
        # 100 × received ÷ total in hundredths of a percent, rounded half up, by integer arithmetic:
        # (20000 × received + total) div (2 × total). Received is 0 where the total is 0 (see
        # _simple_sql), and the divisor is then taken as 1 so that it gives 0 (no percentage).
        totals = list(self._l(_L_TOTAL))
        # Hundredths of a percent are few distinct values, 0 to 10,000 (but for a client paid beyond
        # the total): looked up in the constant table of them (_PERCENTS).
        return list(map(_PERCENTS.__getitem__,
                        map(floordiv, map(add, map(mul, self._l(_L_RECEIVED), repeat(20000)), totals),
                            map(max, map(mul, totals, repeat(2)), repeat(1)))))

    def _last_receipt_date(self) -> list:
        return list(map(self.dates.__getitem__, self._l(_L_LAST_RECEIPT)))

    def _days_since_last_receipt(self) -> list:
        return list(map(self.days_since.__getitem__, self._l(_L_LAST_RECEIPT)))

    def _change_available(self) -> list:
        return self._money(self._l(_L_CHANGE))

    def _non_loan_debt(self) -> list:
        return self._money(self.debts)

    def _last_agreement_date(self) -> list:
        return list(map(self.dates.__getitem__, self._l(_L_LATEST_DAY)))

    def _last_agreement_product(self) -> list:
        return list(map(self.products.__getitem__, self._l(_L_LATEST_PRODUCT)))

    def _days_since_last_loan(self) -> list:
        return list(map(self.days_since.__getitem__, self._l(_L_LATEST_DAY)))

    def _open_loans(self) -> list:
        return list(self._l(_L_OPEN))

    def _date_totally_paid(self) -> list:
        return list(map(self.dates.__getitem__, self._l(_L_TOTALLY_PAID)))


def _figure(name: str, doc: str) -> property:
    def read(self):
        return self[2].column(name)[self[1]]

    read.__name__, read.__doc__ = name, doc
    return property(read)


class ClientFigures(tuple):
    """Every figure of the book for one client on one day.

    The grouped queries compute each figure exactly, as whole cents, day numbers and counts; the
    snapshot keeps their rows as they came in a _Book, and this object is (client id, its place in
    the book, the book): a million of them are built by the tuple constructor in C (map over zipped
    rows), with no Python call per client. A figure read is made for the whole book at once (money
    as Decimal with two places, days as dates; see _Book). Read it by its attributes, values() or
    as_dict(), not by position."""

    __slots__ = ()

    FIELDS = ("client_id", "outstanding", "arrears_amount", "arrears_days", "arrears_months", "next_due_date",
              "next_amount_due", "due_30", "due_60", "due_90", "due_120", "due_120_plus", "settlement",
              "pct_of_all_capital_pd", "last_receipt_date", "days_since_last_receipt", "change_available",
              "non_loan_debt", "last_agreement_date", "last_agreement_product", "days_since_last_loan",
              "open_loans", "date_totally_paid")

    @classmethod
    def empty(cls, client_id: int) -> ClientFigures:
        """The figures of a client with nothing on the book (no day figures, so no day is needed)."""
        book = _Book(as_of=dt.date.min, ids=[client_id], unpaid=[NO_UNPAID], loans=[NO_LOANS], debts=[0], products={})
        return cls((client_id, 0, book))

    @property
    def client_id(self) -> int:
        return self[0]

    outstanding = _figure("outstanding", "amount − paid over the instalments of loans on the book")
    arrears_amount = _figure("arrears_amount", "unpaid on instalments due before as_of")
    arrears_days = _figure("arrears_days", "days from the oldest unpaid due date before as_of")
    arrears_months = _figure("arrears_months", "1–30 days in arrears = 1, 31–60 = 2, ...")
    next_due_date = _figure("next_due_date", "the earliest due date on or after as_of with something unpaid")
    next_amount_due = _figure("next_amount_due", "everything unpaid on the next due date")
    due_30 = _figure("due_30", "unpaid, due 0–30 days after as_of")
    due_60 = _figure("due_60", "unpaid, due 31–60 days after as_of")
    due_90 = _figure("due_90", "unpaid, due 61–90 days after as_of")
    due_120 = _figure("due_120", "unpaid, due 91–120 days after as_of")
    due_120_plus = _figure("due_120_plus", "unpaid, due 121 days or more after as_of")
    settlement = _figure("settlement", "the settlement quotes of the client's loans on the book, summed")
    pct_of_all_capital_pd = _figure("pct_of_all_capital_pd", "100 × received ÷ total repayable of disbursed loans")
    last_receipt_date = _figure("last_receipt_date", "the latest value date of a receipt not reversed")
    days_since_last_receipt = _figure("days_since_last_receipt", "days from the last receipt to as_of")
    change_available = _figure("change_available", "overpayments not paid back")
    non_loan_debt = _figure("non_loan_debt", "unsettled non-loan debits")
    last_agreement_date = _figure("last_agreement_date", "the latest disbursement date")
    last_agreement_product = _figure("last_agreement_product", "the product of the latest loan paid out")
    days_since_last_loan = _figure("days_since_last_loan", "days from the latest disbursement to as_of")
    open_loans = _figure("open_loans", "loans on the book (active, handed over)")
    date_totally_paid = _figure("date_totally_paid", "the last paid-up date, once nothing is left on the book")

    def values(self) -> tuple:
        """Every figure, in FIELDS order, for consumers that take them all (exports, the marketing
        data set): the first call makes every client's (see _Book), later ones are a look-up."""
        try:
            return self[2].rows[self[1]]
        except TypeError:  # not made yet (rows is None)
            return self[2].values()[self[1]]

    def as_dict(self) -> dict:
        return dict(zip(self.FIELDS, self.values(), strict=True))

    def __eq__(self, other) -> bool:
        return isinstance(other, ClientFigures) and self.as_dict() == other.as_dict()

    def __ne__(self, other) -> bool:
        return not self == other

    __hash__ = None  # equal by value of the figures, not of the rows

    def __repr__(self) -> str:
        return f"ClientFigures({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"


# Written as the partial index instalment_unpaid_cover states its condition, so both databases use it.
UNPAID = "i.open AND i.paid < i.amount"


def _cents(column: str, *, vendor: str) -> str:
    """One row's money (a column, or a difference that is never negative) as whole cents, so that
    only integers are summed (core.money.cents_sql is the general form; this one is cheaper on the
    snapshot's hot path): exact on both databases. SQLite keeps a decimal column as a binary
    float and SUM over it adds floats, which past 2**46 rand cannot hold every cent (a sum rounded
    afterwards can be a cent out); one value of at most 14 digits times 100 is within a fiftieth of
    its cents, so adding a half and truncating (cheaper than ROUND) gives them exactly. On
    PostgreSQL the numeric times 100 is a whole number already."""
    if vendor == "sqlite":
        return f"CAST(({column}) * 100 + 0.5 AS INTEGER)"
    return f"CAST(({column}) * 100 AS BIGINT)"


def _sum(cents: str, *, vendor: str, where: str = "") -> str:
    """SUM of whole cents, fetched as an integer: PostgreSQL sums bigints into numeric (which
    psycopg would hand over as Decimal, slow to read back), so the total is cast to bigint again."""
    total = f"SUM({cents})" + (f" FILTER (WHERE {where})" if where else "")
    return f"CAST({total} AS BIGINT)" if vendor == "postgresql" else total


def _money_sum(amount: str, *, vendor: str, where: str = "") -> str:
    """The exact sum of a money expression that is never negative, as whole cents (an integer).
    SQLite: each row turned into cents, then integers summed (_cents). PostgreSQL: numeric sums are
    exact already, so the rows are summed as they are and the total turned into cents once (one
    numeric operation per row rather than three)."""
    if vendor == "sqlite":
        return _sum(_cents(amount, vendor=vendor), vendor=vendor, where=where)
    total = f"SUM({amount})" + (f" FILTER (WHERE {where})" if where else "")
    return f"CAST({total} * 100 AS BIGINT)"


def _accrued_cents_sql(alias: str, *, vendor: str) -> str:
    """Interest accrued in an instalment's current period by `as_of`, in whole cents, rounded half
    up, by integer arithmetic (identical on SQLite and PostgreSQL): (2·interest·elapsed + period)
    div (2·period), as rules.accrued_interest."""
    a = alias
    return (f"((2 * {_cents(f'{a}.interest', vendor=vendor)} * (%(aso)s - {a}.start_ord) + ({a}.due_ord - {a}.start_ord))"
            f" / (2 * ({a}.due_ord - {a}.start_ord)))")


def _paid_ahead_sql(client_filter: str, *, vendor: str) -> str:
    """The settlement's credit for instalments not yet due but already paid in full (from the
    covering partial index instalment_paid_ahead_cover alone, by due date): their capital and
    accrued interest less what was paid, per client and loan, in whole cents (zero or less). Loans
    paid up early have such instalments too; the caller keeps the loans on the book.

    SQLite's planner would rather walk instalment_entity_client for the GROUP BY's order and read
    every instalment of the entity from the table (1.9 s on the 1M book, for no rows); INDEXED BY
    holds it to the partial index (and fails loudly should the index ever not fit the query)."""
    table = Instalment._meta.db_table
    hint = " INDEXED BY instalment_paid_ahead_cover" if vendor == "sqlite" else ""
    capital, paid = _cents("i.capital", vendor=vendor), _cents("i.paid", vendor=vendor)
    return f"""
        SELECT i.client_id, i.loan_id, {_sum(f"{capital} - {paid}", vendor=vendor)}
          + COALESCE({_sum(_accrued_cents_sql('i', vendor=vendor), vendor=vendor, where="i.start_ord < %(aso)s")}, 0)
        FROM {table} i{hint}
        WHERE i.entity_id = %(entity)s AND i.open AND i.paid >= i.amount AND i.due_ord > %(aso)s
          {client_filter.replace('client_id', 'i.client_id')}
        GROUP BY i.client_id, i.loan_id
    """


def _loans_on_book(loan_ids: set[int]) -> set[int]:
    ids = sorted(loan_ids)
    return {pk for start in range(0, len(ids), 5000)
            for pk in Loan.objects.filter(pk__in=ids[start:start + 5000], status__in=OPEN_STATUSES).values_list("pk", flat=True)}


def _paid_beyond_capital(*, entity: Entity, client_ids: list[int], as_of: dt.date) -> set[int]:
    """Loans of these clients with an unpaid instalment not yet due on which more than its capital
    was paid: with the loans paid ahead in full, the only ones whose settlement balance can fall
    below zero (the grouped query flags their clients)."""
    found: set[int] = set()
    for start in range(0, len(client_ids), 5000):
        found.update(Instalment.objects.filter(
            entity=entity, client_id__in=client_ids[start:start + 5000], open=True, paid__lt=F("amount"),
            due_ord__gt=as_of.toordinal(), paid__gt=F("capital")).values_list("loan_id", flat=True).distinct())
    return found


def _overpaid_loans(loan_ids: set[int], *, as_of: dt.date) -> dict[int, int]:
    """Of these loans, those on the book whose settlement balance is below zero: client → the cents
    that bring each such loan's quote back to zero (the pure rule decides, loan by loan)."""
    lines: dict[int, list] = {}
    client_of: dict[int, int] = {}
    ids = sorted(loan_ids)
    for start in range(0, len(ids), 5000):
        for i in Instalment.objects.filter(loan_id__in=ids[start:start + 5000], open=True,
                                           loan__status__in=OPEN_STATUSES):
            lines.setdefault(i.loan_id, []).append(rules.SettlementLine.of(i))
            client_of[i.loan_id] = i.client_id
    lift: dict[int, int] = {}
    for loan_id, loan_lines in lines.items():
        balance = rules.settlement_balance(loan_lines, as_of=as_of)
        if balance < 0:
            lift[client_of[loan_id]] = lift.get(client_of[loan_id], 0) - int(balance * 100)
    return lift


def _unpaid_sql(client_filter: str, *, vendor: str) -> str:
    """Figures from the unpaid instalments of loans on the book, read from the covering partial index
    instalment_unpaid_cover alone (exactly these rows with their money, so paid history is not
    read). Each row: client, outstanding, arrears, oldest unpaid day, next day due, amount
    due on it, the five buckets and the settlement amount, money in whole cents (each row's
    amount turned into cents before summing: only integers are added; none is NULL).

    Each unpaid amount lands in exactly one of arrears and the five buckets, so outstanding is their
    sum, added once per client rather than summed again over the rows. The per-range sums use FILTER, not
    SUM(CASE ... ELSE 0): a row then adds into the one sum it belongs to instead of adding zero to
    the others (a quarter of the query's time on both databases, measured on a 100k-client book).

    The next amount due is everything unpaid on the client's next day, known only once the client's
    rows are grouped. Mostly that day is the only one due in the next 30 days (a monthly schedule),
    and the amount is then the 0–30 bucket; for the other clients (a weekly schedule, two loans due
    on different days, nothing due within 30 days) the day's rows are summed by one probe of the same
    index (96% of the clients with something due needed no probe on the 50k-client demo book)."""
    table = Instalment._meta.db_table
    where = f"i.entity_id = %(entity)s AND {UNPAID} {client_filter.replace('client_id', 'i.client_id')}"
    def owing(condition: str) -> str:
        return _money_sum("i.amount - i.paid", vendor=vendor, where=condition)  # never negative on these rows

    # Settlement (rules.settlement_amount): what is due by as_of in full; of what falls due later its
    # capital and the interest accrued so far in its period; less what was paid on either. That is
    # everything unpaid (arrears and the buckets) less, on what falls due later, the part that is not
    # capital (interest, fees, VAT: amount − capital) net of the interest accrued in its period: one
    # sum over the rows not yet due (the identity holds in whole cents), a CASE on start_ord telling
    # the one row per loan in its current period from those after it.
    accrued = _accrued_cents_sql("i", vendor=vendor)
    if vendor == "sqlite":
        not_capital = _cents("i.amount - i.capital", vendor=vendor)
        unearned = _sum(f"CASE WHEN i.start_ord < %(aso)s THEN {not_capital} - {accrued} ELSE {not_capital} END",
                        vendor=vendor, where="i.due_ord > %(aso)s")
    else:
        # Numeric rows summed as they are (exact) and the total turned into cents once (_money_sum);
        # the accrued cents, an integer, times 0.01 is exact numeric too.
        unearned = _money_sum(f"CASE WHEN i.start_ord < %(aso)s THEN i.amount - i.capital - ({accrued}) * 0.01 "
                              f"ELSE i.amount - i.capital END", vendor=vendor, where="i.due_ord > %(aso)s")
    parts = " + ".join(f"COALESCE(g.{part}, 0)" for part in ("arrears", "d30", "d60", "d90", "d120", "d120p"))
    unpaid_rows = f"FROM {table} j WHERE j.entity_id = %(entity)s AND j.client_id = g.client_id AND j.open AND j.paid < j.amount"
    # Each range test names its upper bound first: most unpaid rows fall due months ahead (long
    # loans), and for them one comparison settles every nearer range.
    within_30 = "i.due_ord <= %(aso)s + 30 AND i.due_ord >= %(aso)s"
    return f"""
        SELECT h.client_id,
          COALESCE(h.arrears, 0) + COALESCE(h.d30, 0) + COALESCE(h.d60, 0) + COALESCE(h.d90, 0) + COALESCE(h.d120, 0)
            + COALESCE(h.d120p, 0),
          COALESCE(h.arrears, 0), h.oldest, h.next_day,
          CASE WHEN h.next_day IS NULL THEN 0 WHEN h.last_within_30 = h.next_day THEN h.d30 ELSE
          (SELECT {_money_sum("j.amount - j.paid", vendor=vendor)} {unpaid_rows.replace("g.client_id", "h.client_id")}
             AND j.due_ord = h.next_day) END,
          COALESCE(h.d30, 0), COALESCE(h.d60, 0), COALESCE(h.d90, 0), COALESCE(h.d120, 0), COALESCE(h.d120p, 0),
          h.settlement, h.paid_beyond_capital
        FROM (
          SELECT g.*, {parts} - COALESCE(g.unearned, 0) AS settlement,
            COALESCE(g.first_within_30, CASE WHEN COALESCE(g.d60, g.d90, g.d120, g.d120p) IS NOT NULL THEN
              (SELECT MIN(j.due_ord) {unpaid_rows} AND j.due_ord > %(aso)s + 30) END) AS next_day
          FROM (
            SELECT i.client_id,
              {owing("i.due_ord < %(aso)s")} AS arrears,
              MIN(i.due_ord) FILTER (WHERE i.due_ord < %(aso)s) AS oldest,
              MIN(i.due_ord) FILTER (WHERE {within_30}) AS first_within_30,
              MAX(i.due_ord) FILTER (WHERE {within_30}) AS last_within_30,
              {owing(within_30)} AS d30,
              {owing("i.due_ord <= %(aso)s + 60 AND i.due_ord > %(aso)s + 30")} AS d60,
              {owing("i.due_ord <= %(aso)s + 90 AND i.due_ord > %(aso)s + 60")} AS d90,
              {owing("i.due_ord <= %(aso)s + 120 AND i.due_ord > %(aso)s + 90")} AS d120,
              {owing("i.due_ord > %(aso)s + 120")} AS d120p,
              {unearned} AS unearned,
              COUNT(*) FILTER (WHERE i.paid > i.capital AND i.due_ord > %(aso)s) AS paid_beyond_capital
            FROM {table} i WHERE {where} GROUP BY i.client_id
          ) g
        ) h
    """


def _simple_sql(client_filter: str, *, vendor: str, packed: bool = True) -> dict[str, str]:
    """The other per-client groupings: one pass over each table. Receipt figures come from the
    running totals on each loan (kept by the receipt services), so receipts are not read. Every
    column the loan grouping reads is an integer but the money (day numbers, not dates), and it
    gives day numbers and whole cents."""
    loans = Loan._meta.db_table
    debits = NonLoanDebit._meta.db_table
    open_ = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
    # The latest agreement: see _DAY_SHIFT (both databases compute the same aggregate once however
    # often the query names it). Unpacked, the key carries the loan id instead of the product id.
    key = (f"disbursed_ord * {_DAY_SHIFT} + id * {_LOAN_SHIFT} + product_id" if packed
           else f"disbursed_ord * {_DAY_SHIFT} + id")
    # A loan has disbursed_ord exactly when it was paid out (the constraint
    # loan_agreement_day_when_paid_out): the key is NULL for the others and MAX leaves them out, and
    # one NULL test picks the paid-out loans' total (cheaper than comparing the status with four names).
    latest = f"MAX({key})"
    total = f"COALESCE({_money_sum('total_repayable', vendor=vendor, where='disbursed_ord IS NOT NULL')}, 0)"
    return {
        "loans": f"SELECT client_id, {latest} / {_DAY_SHIFT}, {latest} %% {_LOAN_SHIFT if packed else _DAY_SHIFT}, "
                 f"COUNT(*) FILTER (WHERE status IN ({open_})), "
                 f"CASE WHEN COUNT(*) FILTER (WHERE status IN ({open_})) = 0 THEN "
                 f"MAX(paid_up_ord) FILTER (WHERE status = '{LoanStatus.PAID_UP}') END, "
                 f"{total}, MAX(last_receipt_ord), {_money_sum('change_total', vendor=vendor)}, "
                 f"CASE WHEN {total} > 0 THEN {_money_sum('received_total', vendor=vendor)} ELSE 0 END "
                 f"FROM {loans} WHERE entity_id = %(entity)s {client_filter} GROUP BY client_id",
        "debts": f"SELECT client_id, {_money_sum('amount', vendor=vendor)} FROM {debits} "
                 f"WHERE entity_id = %(entity)s AND settled_on IS NULL {client_filter} GROUP BY client_id",
    }


def _products(entity: Entity) -> tuple[dict[int, str], bool]:
    """The entity's product names, and whether the book's loan and product ids fit the packed
    latest-agreement key (_DAY_SHIFT): one query (the highest loan id rides on each product row;
    an entity without products has no loans)."""
    # Raw SQL: the ORM's compiling of this query cost more than running it (a millisecond a snapshot).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, name, (SELECT MAX(id) FROM {Loan._meta.db_table}) FROM {Product._meta.db_table} "
                       f"WHERE entity_id = %s", [entity.pk])
        rows = cursor.fetchall()
    packed = all((highest or 0) < _PACKED_LOAN_IDS and pk < _PACKED_PRODUCT_IDS for pk, _, highest in rows)
    return {pk: name for pk, name, _ in rows}, packed


def _latest_products(loan_rows: list[tuple]) -> list[tuple]:
    """Loan rows whose latest agreement names its loan (unpacked key) with its product instead."""
    ids = sorted({row[_L_LATEST_PRODUCT] for row in loan_rows} - {None})
    product_of: dict = {None: None}
    for start in range(0, len(ids), 5000):
        product_of.update(Loan.objects.filter(pk__in=ids[start:start + 5000]).values_list("pk", "product_id"))
    return [(*row[:_L_LATEST_PRODUCT], product_of[row[_L_LATEST_PRODUCT]], *row[_L_LATEST_PRODUCT + 1:])
            for row in loan_rows]


def portfolio_snapshot(*, entity: Entity, as_of: dt.date, client_ids: list[int] | None = None) -> dict[int, ClientFigures]:
    """Every figure of the book for every client of `entity` that has a loan, receipt or debit."""
    params: dict = {"entity": entity.pk, "aso": as_of.toordinal()}
    client_filter = ""
    if client_ids is not None:
        if not client_ids:
            return {}
        client_filter = "AND client_id IN (" + ", ".join(str(int(c)) for c in client_ids) + ")"

    products, packed = _products(entity)
    simple = _simple_sql(client_filter, vendor=connection.vendor, packed=packed)
    # A whole book is millions of row tuples that all live on and hold no cycles; the cyclic
    # collector, triggered by their allocation, would walk them over and over (about a sixth of the
    # snapshot on the 50k-client book). Paused while they are built, as it was found afterwards.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _snapshot(entity=entity, as_of=as_of, client_filter=client_filter, simple=simple, packed=packed,
                         products=products, params=params)
    finally:
        if collecting:
            gc.enable()


def _snapshot(*, entity: Entity, as_of: dt.date, client_filter: str, simple: dict[str, str], packed: bool,
              products: dict[int, str], params: dict) -> dict[int, ClientFigures]:
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A whole-book grouping: room to hash a million clients in memory instead of spilling.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # JIT-compiling these wide aggregates cost more than half of each query on a 1M book
            # (0.7 s of 1.3 s per entity, measured with EXPLAIN ANALYZE); they run faster interpreted.
            cursor.execute("SET LOCAL jit = off")
            # Both groupings read covering indexes already in client order; grouping that stream
            # beats hashing a million clients' numeric sums (the planner guesses otherwise: the
            # loans grouping measured a third faster sorted than hashed on a 100k-client book).
            cursor.execute("SET LOCAL enable_hashagg = off")
        cursor.execute(_unpaid_sql(client_filter, vendor=connection.vendor), params)
        rows = cursor.fetchall()
        unpaid_rows = dict(zip(map(itemgetter(0), rows), rows, strict=True))
        # Settlement adjustments, few by nature: the credit of instalments paid ahead in full, and
        # for any loan paid ahead beyond what settles it, the lift that holds its quote at zero.
        adjust: dict[int, int] = {}
        cursor.execute(_paid_ahead_sql(client_filter, vendor=connection.vendor), params)
        paid_ahead = cursor.fetchall()
        on_book = _loans_on_book({loan_id for _, loan_id, _ in paid_ahead}) if paid_ahead else set()
        for cid, loan_id, credit in paid_ahead:
            if loan_id in on_book:
                adjust[cid] = adjust.get(cid, 0) + credit
        flagged = list(compress(unpaid_rows, map(itemgetter(_U_PAID_BEYOND_CAPITAL), rows)))
        maybe_overpaid = on_book | (_paid_beyond_capital(entity=entity, client_ids=flagged, as_of=as_of) if flagged else set())
        for cid, lift in _overpaid_loans(maybe_overpaid, as_of=as_of).items():
            adjust[cid] = adjust.get(cid, 0) + lift
        for cid, cents in adjust.items():
            row = unpaid_rows.get(cid, (cid, *NO_UNPAID[1:]))
            unpaid_rows[cid] = (*row[:_U_SETTLEMENT], row[_U_SETTLEMENT] + cents, *row[_U_SETTLEMENT + 1:])
        cursor.execute(simple["debts"], params)
        debts = dict(cursor.fetchall())
        # Every client with instalments has a loan, so the loan rows (and the debtors without a
        # loan) are every client's; the other rows are put in their order by C-level maps.
        cursor.execute(simple["loans"], params)
        loan_rows = cursor.fetchall()
    if not packed:
        loan_rows = _latest_products(loan_rows)
    ids = list(map(itemgetter(0), loan_rows))
    debtors_only = sorted(debts.keys() - set(ids))
    if debtors_only:
        ids += debtors_only
        loan_rows += [(cid, *NO_LOANS[1:]) for cid in debtors_only]
    book = _Book(as_of=as_of, ids=ids, unpaid=list(map(unpaid_rows.get, ids, repeat(NO_UNPAID))), loans=loan_rows,
                 debts=list(map(debts.get, ids, repeat(0))), products=products)
    return dict(zip(ids, map(ClientFigures, zip(ids, range(len(ids)), repeat(book))), strict=True))


def client_figures(*, entity: Entity, client_id: int, as_of: dt.date) -> ClientFigures:
    found = portfolio_snapshot(entity=entity, as_of=as_of, client_ids=[client_id]).get(client_id)
    return found if found is not None else ClientFigures.empty(client_id)


# --- lists and details ---------------------------------------------------------------------------
def product_list(*, entity: Entity, active_only: bool = False) -> QuerySet[Product]:
    qs = Product.objects.filter(entity=entity)
    return qs.filter(is_active=True) if active_only else qs


def loan_list(*, entity: Entity, status: str | None = None, client_id: int | None = None,
              client_query: str | None = None) -> QuerySet[Loan]:
    """Loans of the entity, newest first; `client_query` finds the clients as the client search does
    (number, ID number, name, cellphone)."""
    qs = Loan.objects.filter(entity=entity).select_related("client", "product")
    if status:
        qs = qs.filter(status=status)
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    if client_query:
        from imali.clients.selectors import client_search

        qs = qs.filter(client_id__in=list(client_search(entity=entity, query=client_query, limit=200).values_list("pk", flat=True)))
    return qs.order_by("-id")


def loan_get(*, entity: Entity, loan_id: int) -> Loan:
    return Loan.objects.select_related("client", "product", "payout_account").get(entity=entity, pk=loan_id)


def receipt_list(*, entity: Entity, loan_id: int | None = None, client_id: int | None = None) -> QuerySet[Receipt]:
    qs = Receipt.objects.filter(entity=entity).select_related("loan", "client")
    if loan_id is not None:
        qs = qs.filter(loan_id=loan_id)
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    return qs


def instalments_with_status(*, loan: Loan, as_of: dt.date) -> list[tuple[Instalment, str]]:
    """The schedule of one loan with each instalment's status on `as_of`."""
    return [
        (i, rules.instalment_status(amount=i.amount, paid=i.paid, due_date=i.due_date, as_of=as_of))
        for i in Instalment.objects.filter(loan=loan).order_by("seq")
    ]


def loan_settlement(*, loan: Loan, as_of: dt.date) -> Decimal:
    """Settlement quote for one loan (the same definition as the snapshot's, via the pure rule);
    nothing for a loan not on the book (not yet paid out, paid up, written off)."""
    if loan.status not in OPEN_STATUSES:
        return ZERO
    lines = [
        rules.SettlementLine.of(i)
        for i in Instalment.objects.filter(loan=loan, open=True)
    ]
    return rules.settlement_amount(lines, as_of=as_of)


def loan_outstanding(*, loan: Loan) -> Decimal:
    return aggregate_money(Instalment.objects.filter(loan=loan, open=True), owed=F("amount") - F("paid"))["owed"]


def tolerance_amount() -> Decimal:
    """The fixed part of the receipt tolerance (settings IMALI_RECEIPT_TOLERANCE_AMOUNT)."""
    return Decimal(str(getattr(settings, "IMALI_RECEIPT_TOLERANCE_AMOUNT", rules.RECEIPT_TOLERANCE_AMOUNT)))


def loan_receipt_maximum(*, loan: Loan, as_of: dt.date, instalments: list[Instalment] | None = None) -> rules.ReceiptMaximum:
    """The largest receipt `loan` takes on `as_of` (rules.receipt_maximum, with the tolerance of
    settings IMALI_RECEIPT_TOLERANCE_AMOUNT and _PERCENT), from its open instalments (read here
    unless the caller holds them, locked)."""
    if instalments is None:
        instalments = list(Instalment.objects.filter(loan=loan, open=True))
    outstanding = sum((i.amount - i.paid for i in instalments), ZERO)
    settlement = rules.settlement_amount([rules.SettlementLine.of(i) for i in instalments], as_of=as_of)
    return rules.receipt_maximum(
        outstanding=outstanding, settlement=settlement, tolerance_amount=tolerance_amount(),
        tolerance_percent=Decimal(str(getattr(settings, "IMALI_RECEIPT_TOLERANCE_PERCENT", rules.RECEIPT_TOLERANCE_PERCENT))))
