"""The local payment-stream peer on an ephemeral loopback port, and an entity set up to use it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imali.paystream import services
from imali.peers.paystream import PaystreamPeer, PeerConfig
from imali.tenancy.models import Module
from imali.tenancy.rights import Right
from tests import factories

BANK_MORNING = dt.datetime.combine(dt.date.today(), dt.time(10, 0), tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.fixture(autouse=True)
def banks_open(monkeypatch):
    """The banks' cut-offs (TT1 20:30, TT2 21:00 South African time) read against a morning, so a
    test does not depend on the hour it runs; tests of the cut-offs set their own time."""
    from imali.paystream import mandates

    monkeypatch.setattr(mandates, "bank_now", lambda: BANK_MORNING)


@pytest.fixture
def peer():
    started = PaystreamPeer(PeerConfig(username="lender", password="s3cret-stream", wallet_delay=0.3)).start()
    yield started
    started.stop()


def stream_entity(entity, peer):
    entity.modules = [*entity.modules, Module.PAYMENT_STREAMS.value]
    entity.save(update_fields=["modules"])
    setup = factories.make_user(entity=entity, rights=[Right.PAYMENT_STREAM_WEB_SERVICES])
    services.stream_settings_save(entity=entity, actor=setup, base_url=peer.base_url, username="lender",
                                  password="s3cret-stream", branch_code="HO")
    return entity


@pytest.fixture
def ps_entity(entity, peer):
    return stream_entity(entity, peer)


@pytest.fixture
def clerk(ps_entity):
    user = factories.make_user(entity=ps_entity, rights=[Right.PAYMENT_STREAM_WEB_SERVICES, Right.VIEW_CLIENTS,
                                                        Right.MANAGE_CLIENTS, Right.CAPTURE_LOANS, Right.APPROVE_LOANS,
                                                        Right.DISBURSE_LOANS])
    user.disbursement_limit = Decimal("100000")
    user.save(update_fields=["disbursement_limit"])
    return user


@pytest.fixture
def borrower(ps_entity):
    employer = factories.make_employer(entity=ps_entity)
    return factories.make_client(entity=ps_entity, employer=employer)


def approved_loan(entity, actor, client, *, principal="3000", instalments=3, applied_on=None):
    from imali.loans import services as loans

    product = loans.product_create(entity=entity, actor=actor, data={
        "name": f"Product {client.pk}-{principal}", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal=principal,
                            instalments=instalments, applied_on=applied_on or dt.date.today(), pay_day=25)
    return loans.loan_approve(loan=loan, actor=actor)


# A valid account in the sample table (tests/paystream/test_cdv.py works it by hand).
ABSA_OK = {"branch_code": "632005", "account_number": "4012345679", "account_type": "cheque"}


def active_loan_with_note(entity, actor, client, *, stream="naedo", days_ago=75):
    """A loan paid out `days_ago` days back (so some instalments are due) with a note on it."""
    from imali.loans import services as loans

    account = services.account_register(entity=entity, actor=actor, client=client, **ABSA_OK)
    start = dt.date.today() - dt.timedelta(days=days_ago)
    loan = approved_loan(entity, actor, client, applied_on=start)
    loan = loans.loan_disburse(loan=loan, actor=actor, payout_account=account.account, disbursed_on=start)
    note = services.note_create(entity=entity, actor=actor, loan=loan, stream=stream, account=account)
    return loan, note


def submitted_mandate_awaiting_the_bank(entity, actor, client, peer):
    """A TT1 mandate of a new approved loan, hand-signed and submitted, that the bank has not
    answered yet (the peer's clock at 10:00 local, its answer "none"): (loan, mandate)."""
    from imali.paystream import mandates
    from imali.signing import services as signing

    peer.configure(now=dt.datetime.combine(dt.date.today(), dt.time(10, 0), tzinfo=dt.timezone(dt.timedelta(hours=2))),
                   mandate_answer="none")
    account = services.account_register(entity=entity, actor=actor, client=client, **ABSA_OK)
    loan = approved_loan(entity, actor, client)
    mandate = mandates.mandate_create(entity=entity, actor=actor, loan=loan, account=account,
                                      data={"authentication": "tt1", "collection_day": 25,
                                            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()})
    signing.document_hand_sign(actor=actor, entity=entity, document=signing.Document(loan=loan, mandate=mandate.document))
    mandates.mandate_submit(entity=entity, actor=actor, mandate=mandate)
    return loan, mandate
