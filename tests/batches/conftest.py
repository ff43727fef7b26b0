"""Hand-built loan books for the batch tests, through the real services."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from imali.loans.models import Instalment
from imali.loans.services import receipt_post
from imali.messaging.credits import credits_assign
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_borrower, make_loan, make_product

_numbers = itertools.count(100)
_refs = itertools.count(1)
# The day the batches are sent, in these books: after the first two dues of a loan paid out on 5 January.
TODAY = dt.date(2026, 3, 10)
DISBURSED = dt.date(2026, 1, 5)


def cellphone() -> str:
    """A distinct South African mobile number."""
    return f"082{next(_numbers):07d}"


@pytest.fixture
def lender(entity):
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("1000000")
    user.save()
    return user


@pytest.fixture
def sender(entity):
    """A user who may send batches (and nothing else)."""
    return factories.make_user(entity=entity, rights=[Right.MAXSMS_PROCESSING])


@pytest.fixture
def funded(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10_000)
    return entity


@pytest.fixture
def product(entity):
    return make_product(entity)


class Book:
    """Builds borrowers and loans of one entity; `today` is the batches' day."""

    def __init__(self, entity, user, product):
        self.entity, self.user, self.product = entity, user, product

    def borrower(self, **overrides):
        overrides.setdefault("cellphone", cellphone())
        client, _ = make_borrower(self.entity, **overrides)
        return client

    def loan(self, client=None, *, instalments=3, principal="2000", disbursed_on=DISBURSED):
        client = client or self.borrower()
        return make_loan(self.entity, user=self.user, product=self.product, client=client, principal=principal,
                         instalments=instalments, disbursed_on=disbursed_on)

    def pay(self, loan, amount, on):
        return receipt_post(entity=self.entity, actor=self.user, loan=loan, amount=str(amount), value_date=on,
                            payback_type="eft", external_reference=f"T{next(_refs)}")

    def pay_instalments(self, loan, count, on):
        """Pay the first `count` instalments exactly; returns the receipt."""
        owed = sum((i.amount - i.paid for i in Instalment.objects.filter(loan=loan).order_by("seq")[:count]), Decimal(0))
        return self.pay(loan, owed, on)

    @staticmethod
    def dues(loan) -> list[dt.date]:
        return list(Instalment.objects.filter(loan=loan).order_by("seq").values_list("due_date", flat=True))


@pytest.fixture
def book(entity, lender, product):
    return Book(entity, lender, product)
