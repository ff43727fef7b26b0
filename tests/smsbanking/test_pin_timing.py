"""BALANCE <account> <PIN> from a stranger's phone takes the same work whether the account exists,
has no PIN, or has one: an unknown account or one without a PIN answering at once (no Argon2
check) while a real PIN takes an Argon2 check tells a stranger, by the answer's delay, which
accounts have a PIN worth guessing."""

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
