"""Loan-book fixtures, built through the real services."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from imali.clients.services import client_account_add
from imali.loans.services import loan_apply, loan_approve, loan_disburse, product_create
from tests import factories

_seq = itertools.count(1)


def make_product(entity, **overrides):
    data = {
        "name": "Short term 6", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
        "max_principal": "8000", "min_instalments": 1, "max_instalments": 6, "interest_rate_pm": "5",
        "service_fee_pm": "60", "vat_rate": "15",
    }
    data.update(overrides)
    return product_create(entity=entity, actor=None, data=data)


def make_borrower(entity, **overrides):
    client = factories.make_client(entity=entity, **{"payment_day": 25, "payment_move_direction": "before", **overrides})
    account = client_account_add(client=client, actor=None, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": "1234567890", "account_type": "savings"})
    return client, account


def make_loan(entity, *, user, product=None, client=None, principal="2000", instalments=3,
              disbursed_on=dt.date(2026, 1, 5), **apply_kwargs):
    product = product or make_product(entity, name=f"Product {next(_seq)}")
    if client is None:
        client, account = make_borrower(entity)
    else:
        account = client.accounts.first()
    loan = loan_apply(entity=entity, actor=user, client=client, product=product, principal=principal,
                      instalments=instalments, applied_on=disbursed_on, **apply_kwargs)
    loan_approve(loan=loan, actor=user)
    return loan_disburse(loan=loan, actor=user, payout_account=account, disbursed_on=disbursed_on)


@pytest.fixture
def lender(entity):
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    return user
