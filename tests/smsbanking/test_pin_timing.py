"""BALANCE <account> <PIN> from a stranger's phone tells nothing about which accounts have a PIN
worth guessing: the same work (one Argon2 check) and the same answer whether the account is
unknown, has no PIN, has one, or has one locked. An unknown account or one without a PIN answered
at once while a real PIN took an Argon2 check (the delay told); and after three wrong tries an
account with a PIN answered "locked", which one without never does."""

import itertools

import pytest
from argon2 import PasswordHasher

from imali.messaging.inbound import inbound_receive
from imali.smsbanking import services
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import BankingRequest

from .conftest import OTHER_PHONE, make_client

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


@pytest.fixture
def argon2_checks(monkeypatch):
    """How many Argon2 verifications ran (the library's, counted; the check itself still runs)."""
    calls = []
    real = PasswordHasher.verify

    def counted(self, hash, password):  # noqa: A002 - the library's own parameter name
        calls.append(1)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return calls


def _balance(account, pin: str) -> str:
    inbound_receive(gateway="test", provider_id=f"pt{next(_ids)}", number=OTHER_PHONE, text=f"BALANCE {account} {pin}",
                    to_address="Imali")
    answer_pending()
    return BankingRequest.objects.latest("id").outcome


def test_an_unknown_account_and_one_without_a_pin_cost_an_argon2_check_like_a_wrong_pin(bank, borrower, manager, argon2_checks):
    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826")
    without_pin = make_client(bank, cellphone="+27825550111")
    work = {}
    for label, account in (("with a PIN", borrower.number), ("without a PIN", without_pin.number), ("unknown", 99999999)):
        argon2_checks.clear()
        assert _balance(account, "1357") == "balance_wrong_pin"
        work[label] = len(argon2_checks)
    assert work == {"with a PIN": 1, "without a PIN": 1, "unknown": 1}


def test_a_stranger_cannot_tell_a_locked_pin_from_an_account_without_one(bank, borrower, manager, argon2_checks):
    from imali.messaging.models import OutboxMessage

    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826")
    without_pin = make_client(bank, cellphone="+27825550111")
    answers = {}
    for label, account in (("with a PIN", borrower.number), ("without a PIN", without_pin.number)):
        for _ in range(5):  # past the lock-out of the account with a PIN
            argon2_checks.clear()
            _balance(account, "1357")
            assert len(argon2_checks) == 1, label
        answers[label] = OutboxMessage.objects.filter(number=OTHER_PHONE).order_by("-id").first().text
    assert answers["with a PIN"] == answers["without a PIN"] == f"{bank.name}: the account number or PIN is wrong."
    assert BankingRequest.objects.filter(outcome="balance_locked").count() == 3  # the request log tells staff
