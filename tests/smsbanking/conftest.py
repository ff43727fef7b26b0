import datetime as dt
from decimal import Decimal

import pytest

from imali.clients.services import client_account_add
from imali.loans import services as loans
from imali.loans.services import local_today
from imali.messaging.credits import credits_assign
from imali.smsbanking import services
from imali.tenancy.rights import Right
from tests import factories

CLIENT_PHONE = "+27825550101"
OTHER_PHONE = "+27825550199"
OFFICER_PHONE = "+27825550300"


@pytest.fixture
def bank(entity, operator):
    """An entity with SMS banking on, 1,000 SMS credits, and its service address 'Imali'."""
    credits_assign(actor=operator, entity=entity, channel="sms", amount=1000)
    admin = factories.make_admin(entity=entity)
    services.settings_update(actor=admin, entity=entity, data={"enabled": True, "service_address": "Imali"})
    return entity


@pytest.fixture
def manager(bank):
    user = factories.make_admin(entity=bank)
    user.cellphone = "+27825550400"
    user.disbursement_limit = Decimal("1000000")
    user.save()
    return user


@pytest.fixture
def officer(bank):
    user = factories.make_user(entity=bank, rights=[Right.CAPTURE_RECEIPTS, Right.VIEW_CLIENTS])
    user.cellphone = OFFICER_PHONE
    user.first_name, user.last_name = "Lerato", "Dlamini"
    user.save()
    return user


@pytest.fixture
def product(bank, manager):
    return loans.product_create(entity=bank, actor=manager, data={
        "name": "Monthly", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})


def make_client(entity, **fields):
    client = factories.make_client(entity=entity, **{"payment_day": 25, **fields})
    client_account_add(client=client, actor=None, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": "1234567890", "account_type": "savings"})
    return client


def make_loan(*, entity, actor, client, product, principal="3000", instalments=6, days_ago=70):
    on = local_today(entity) - dt.timedelta(days=days_ago)
    loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal=principal,
                            instalments=instalments, applied_on=on)
    loans.loan_approve(loan=loan, actor=actor)
    return loans.loan_disburse(loan=loan, actor=actor, payout_account=client.accounts.first(), disbursed_on=on)


@pytest.fixture
def borrower(bank, manager, officer, product):
    """A client of the officer with two loans on the book, one in arrears."""
    client = make_client(bank, cellphone=CLIENT_PHONE, name="Thabo", salesperson=officer)
    make_loan(entity=bank, actor=manager, client=client, product=product, days_ago=70)
    make_loan(entity=bank, actor=manager, client=client, product=product, principal="1000", instalments=3, days_ago=10)
    return client
