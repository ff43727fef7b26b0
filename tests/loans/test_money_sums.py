"""Money sums are exact on both databases. SQLite keeps a DecimalField's fractions as REAL, so a
plain SUM adds binary floats: eight debits of 0.70 and thirty of 0.10 summed to 8.59999999999999.
Every money sum goes through core.money (whole cents in SQL); these amounts expose any that does not."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest
from django.db.models import F
from django.urls import reverse

from imali.core.money import aggregate_money, from_cents, sum_cents
from imali.loans import queries, selectors, services
from imali.loans.models import Instalment, NonLoanDebit
from tests.loans.conftest import make_borrower, make_loan

pytestmark = pytest.mark.django_db

# Each sums through binary floating point to something other than its exact total.
DRIFTING = {
    "small": (["0.70"] * 8 + ["0.10"] * 30, D("8.60")),
    "large": (["1234567.89"] * 8 + ["0.70"] * 30, D("9876564.12")),
}


def _debits(entity, lender, client, amounts):
    for n, amount in enumerate(amounts):
        services.non_loan_debit_add(entity=entity, actor=lender, client=client, description=f"Fee {n}", amount=amount,
                                    debit_date=dt.date(2026, 3, 2))


@pytest.mark.parametrize("case", sorted(DRIFTING))
def test_non_loan_debt_is_exact(client, entity, lender, case):
    amounts, total = DRIFTING[case]
    borrower, _ = make_borrower(entity)
    _debits(entity, lender, borrower, amounts)
    assert sum(D(a) for a in amounts) == total
    assert queries.non_loan_debt(entity=entity, client_id=borrower.pk) == total
    assert selectors.client_figures(entity=entity, client_id=borrower.pk, as_of=dt.date(2026, 3, 2)).non_loan_debt == total
    assert aggregate_money(NonLoanDebit.objects.filter(client=borrower), t="amount") == {"t": total}
    per_client = NonLoanDebit.objects.filter(client=borrower).values("client").annotate(c=sum_cents("amount"))
    assert [from_cents(row["c"]) for row in per_client] == [total]
    client.force_login(lender)
    page = client.get(reverse("web:client_debits", kwargs={"client_id": borrower.pk}))
    text = page.content.decode()
    assert page.status_code == 200 and (str(total) in text or f"{total:,.2f}" in text)


def test_sums_of_random_cents_are_exact(entity, lender):
    rng = random.Random(10)
    borrower, _ = make_borrower(entity)
    amounts = [D(rng.randrange(1, 10_000_000)).scaleb(-2) for _ in range(150)]
    NonLoanDebit.objects.bulk_create(NonLoanDebit(entity=entity, client=borrower, description="x", amount=a,
                                                  debit_date=dt.date(2026, 3, 2)) for a in amounts)
    assert aggregate_money(NonLoanDebit.objects.filter(client=borrower), t="amount", none=F("amount") * 0) == \
        {"t": sum(amounts), "none": D("0.00")}
    assert aggregate_money(NonLoanDebit.objects.none(), t="amount") == {"t": D("0.00")}


def test_loan_outstanding_is_exact(entity, lender):
    loan = make_loan(entity, user=lender, principal="3000", instalments=6)
    # Amounts chosen to drift in floating point: what the schedule holds is beside the point here.
    amounts = [D("1234567.89"), D("0.70"), D("0.70"), D("0.70"), D("0.10"), D("0.10")]
    for instalment, amount in zip(Instalment.objects.filter(loan=loan).order_by("seq"), amounts, strict=True):
        Instalment.objects.filter(pk=instalment.pk).update(amount=amount, paid=D("0.10"))
    assert selectors.loan_outstanding(loan=loan) == sum(amounts) - 6 * D("0.10") == D("1234569.59")
