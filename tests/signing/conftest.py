"""Signing fixtures: a funded ZA entity with its OTP setup, a loan officer, a supervisor with the
Override right, and a borrower with a loan application, all built through the real services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imali.clients.services import client_account_add
from imali.loans.models import Product
from imali.loans.services import loan_apply, product_create
from imali.messaging.credits import credits_assign
from imali.signing.services import otp_setup_update
from imali.signing.testing import code_from_outbox
from imali.tenancy.rights import Right
from tests import factories

OFFICER_RIGHTS = [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.CAPTURE_LOANS]


def code_sent(challenge) -> str:
    """What the phone receives: the outbox text made ready for the SMSC, as the transport does."""
    return code_from_outbox(challenge)


def make_product(entity):
    existing = Product.objects.filter(entity=entity, name="Short term").first()
    if existing is not None:
        return existing
    return product_create(entity=entity, actor=None, data={
        "name": "Short term", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
        "max_principal": "8000", "min_instalments": 1, "max_instalments": 6, "interest_rate_pm": "5",
        "service_fee_pm": "60", "vat_rate": "15"})


def make_borrower(entity, **overrides):
    client = factories.make_client(entity=entity, payment_day=25, **overrides)
    client_account_add(client=client, actor=None, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": "1234567890", "account_type": "savings"})
    return client


def make_application(entity, *, user, client, principal="3000", instalments=3, product=None):
    return loan_apply(entity=entity, actor=user, client=client, product=product or make_product(entity),
                      principal=principal, instalments=instalments, applied_on=dt.date(2026, 11, 2))


@pytest.fixture
def funded(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=1000)
    return entity


@pytest.fixture
def admin(funded):
    return factories.make_admin(entity=funded)


@pytest.fixture
def setup(funded, admin):
    return otp_setup_update(actor=admin, entity=funded, data={
        "enrol_client": True, "loan_otp": True, "threshold": "1000", "code_length": 6, "validity_minutes": 5,
        "tries_per_code": 5})


@pytest.fixture
def officer(funded):
    user = factories.make_user(entity=funded, rights=OFFICER_RIGHTS, username="officer")
    user.first_name, user.last_name, user.cellphone = "Olive", "Officer", "+27821110001"
    user.save()
    return user


@pytest.fixture
def supervisor(funded):
    user = factories.make_user(entity=funded, rights=[*OFFICER_RIGHTS, Right.OVERRIDE_LOAN_OTP, Right.CLEAR_ENROLMENT],
                               username="supervisor", password="supervisor-pass-123")
    user.first_name, user.last_name, user.cellphone = "Sipho", "Supervisor", "+27821110002"
    user.save()
    return user


@pytest.fixture
def borrower(funded):
    return make_borrower(funded)


@pytest.fixture
def application(funded, officer, borrower):
    return make_application(funded, user=officer, client=borrower)


@pytest.fixture
def threshold():
    return Decimal("1000")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 on every test user costs seconds; hashing strength is not what these tests are about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
