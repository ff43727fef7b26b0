"""A small loan book for the automatic and MIS SMS, built through the real services."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest

from imali.loans.models import Instalment
from imali.messaging.credits import credits_assign
from imali.reminders.models import AutomaticSetup
from tests.loans.conftest import make_borrower, make_loan, make_product  # noqa: F401 - re-exported for the tests


@pytest.fixture
def lender(entity):
    from tests import factories

    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    return user


@pytest.fixture
def funded(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10_000)
    return entity


@pytest.fixture
def product(entity):
    return make_product(entity)


def first_due(loan) -> dt.date:
    return Instalment.objects.filter(loan=loan).order_by("seq").values_list("due_date", flat=True).first()


def setup_automatic(entity, **fields) -> AutomaticSetup:
    setup, _ = AutomaticSetup.objects.get_or_create(entity=entity)
    for name, value in fields.items():
        setattr(setup, name, value)
    setup.save()
    return setup


def local_at(entity, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=zoneinfo.ZoneInfo(entity.time_zone))
