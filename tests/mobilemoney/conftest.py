"""Mobile-money fixtures: the local M-PESA and MoMo peers on ephemeral loopback ports, setups that
point at them with callbacks to the live test server, and loans built through the real services."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from django.db import connection

from imali.clients.services import client_account_add
from imali.messaging.credits import credits_assign
from imali.mobilemoney.services import setup_save
from imali.peers.momo import MomoConfig, MomoPeer
from imali.peers.mpesa import MpesaConfig, MpesaPeer
from tests import factories
from tests.loans.conftest import make_loan, make_product

SHORT_CODE = "600123"


# On the in-memory SQLite test database the live server shares the test thread's one connection,
# which cannot be used by both at once: a provider's result handled while the test thread is inside
# a send transaction, or mid-query, breaks one of them ("no such savepoint", "SQL statements in
# progress"). There the peers hold their background callbacks while the test acts, and `wait_for`
# lets them through only between its checks. PostgreSQL gets them as production does, at any moment.
_HELD_PEERS: list = []


def _held_on_sqlite(peer):
    if connection.vendor == "sqlite":
        peer.hold_callbacks()
        _HELD_PEERS.append(peer)
    return peer


@pytest.fixture
def mpesa_peer():
    # The validation deadline is the peer's default (Daraja's, about 8 s), not a shorter one: on a
    # loaded CI machine a first validation call can take over 3 s, and a late answer is treated as none.
    peer = _held_on_sqlite(MpesaPeer(MpesaConfig(short_code=SHORT_CODE, time_zone="Africa/Johannesburg",
                                                 validation_deadline=8.0, result_delay=0.3)).start())
    yield peer
    if peer in _HELD_PEERS:
        _HELD_PEERS.remove(peer)
    peer.release_callbacks()
    peer.stop()


@pytest.fixture
def momo_peer():
    peer = _held_on_sqlite(MomoPeer(MomoConfig(currency="ZAR", target_environment="mtnsouthafrica",
                                               transfer_delay=0.3)).start())
    yield peer
    if peer in _HELD_PEERS:
        _HELD_PEERS.remove(peer)
    peer.release_callbacks()
    peer.stop()


@pytest.fixture
def lender_user(entity):
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=1000)
    return user


def mpesa_setup(entity, actor, peer, callback_base: str):
    c = peer.config
    return setup_save(entity=entity, actor=actor, data={
        "provider": "mpesa", "base_url": peer.base_url, "short_code": c.short_code, "consumer_key": c.consumer_key,
        "consumer_secret": c.consumer_secret, "initiator_name": c.initiator_name,
        "security_credential": c.security_credential, "callback_base_url": callback_base})


def offline_setup(entity, actor, *, callback_base: str = "http://127.0.0.1:8000/"):
    """An M-PESA setup whose provider address nothing listens on (port 9): what a test needs that
    sends nothing (a call there is "unavailable", so nothing leaves)."""
    return setup_save(entity=entity, actor=actor, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600777", "consumer_key": "k",
        "consumer_secret": "the-secret", "initiator_name": "i", "security_credential": "cred",
        "callback_base_url": callback_base})


@pytest.fixture
def api(lender_user):
    """The API as the lender's administrator (DRF's client, authenticated)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(lender_user)
    return client


def workbook(rows) -> bytes:
    """An XLSX file holding `rows` on its first sheet."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def momo_setup(entity, actor, peer, callback_base: str):
    c = peer.config
    return setup_save(entity=entity, actor=actor, data={
        "provider": "momo", "base_url": peer.base_url, "target_environment": c.target_environment, "currency": c.currency,
        "consumer_key": c.api_user, "consumer_secret": c.api_key, "subscription_key": c.subscription_key,
        "callback_base_url": callback_base})


def open_loan(entity, user, *, principal="2000", cellphone="0821234567"):
    """A disbursed loan of a client whose cellphone is `cellphone`; paid out a few days ago."""
    client = factories.make_client(entity=entity, cellphone=cellphone, payment_day=25, payment_move_direction="before")
    client_account_add(client=client, actor=None, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": "1234567890", "account_type": "savings"})
    today = dt.date.today()
    return make_loan(entity, user=user, client=client, principal=principal, disbursed_on=today - dt.timedelta(days=3),
                     product=make_product(entity, name=f"P{time.monotonic_ns()}"))


def wait_for(condition, seconds=30.0):
    """Poll `condition` until it holds or `seconds` pass. Held callbacks (SQLite) go through only
    between the checks, and are held again when the wait ends."""
    deadline = time.monotonic() + seconds
    while True:
        for peer in _HELD_PEERS:
            peer.hold_callbacks()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        for peer in _HELD_PEERS:
            peer.release_callbacks()
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def consumer_inline(settings):
    """The Huey consumer's work done at once (Huey's immediate mode): a confirmation SMS is queued
    as soon as its receipt commits, a statement import runs when confirmed. Tests of a lost task
    switch it off."""
    huey = settings.HUEY
    before = huey.immediate
    huey.immediate = True
    yield huey
    huey.immediate = before
