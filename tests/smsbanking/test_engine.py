"""The keyword engine on inbound messages: HELP, unknown words, aliases, STOP/START, BALANCE from
the bound phone and with account and PIN, PIN rules, lock-out, rate limit, priority, masking."""

import itertools
import logging

import pytest
from django.urls import reverse

from imali.core.formatting import format_money
from imali.core.models import AuditEntry
from imali.loans.models import Loan
from imali.loans.queries import loan_page
from imali.loans.services import local_today
from imali.messaging.inbound import inbound_receive
from imali.messaging.models import InboundMessage, MarketingOptOut, OutboxMessage, Priority
from imali.messaging.segments import segment_count
from imali.signing.security import unseal_for_submit
from imali.smsbanking import rules, services
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import BankingPin, BankingRequest, PinChange
from tests import factories

from .conftest import CLIENT_PHONE, OFFICER_PHONE, OTHER_PHONE

_ids = itertools.count(1)


def mo(number, text, to="Imali"):
    message, created = inbound_receive(gateway="test", provider_id=f"t{next(_ids)}", number=number, text=text, to_address=to)
    assert created
    answer_pending()  # the answering worker's pass
    message.refresh_from_db()
    return message


def replies_to(number):
    return list(OutboxMessage.objects.filter(number=number).order_by("id").values_list("text", flat=True))


def last_reply(number):
    return replies_to(number)[-1]


def test_help_and_unknown_answer_and_are_logged(bank):
    mo(OTHER_PHONE, "help")
    assert "BALANCE <account> <PIN>" in last_reply(OTHER_PHONE)
    mo(OTHER_PHONE, "Hello there")
    assert "'Hello' is not a word we know" in last_reply(OTHER_PHONE) and "HELP" in last_reply(OTHER_PHONE)
    assert list(BankingRequest.objects.order_by("id").values_list("command", "outcome")) == [
        ("help", "help"), ("unknown", "unknown")]
    assert InboundMessage.objects.filter(handled=True).count() == 2


def test_nothing_happens_for_an_entity_without_sms_banking(entity):
    factories.make_client(entity=entity, cellphone=CLIENT_PHONE)
    mo(CLIENT_PHONE, "BALANCE", to="")
    assert not OutboxMessage.objects.exists() and not BankingRequest.objects.exists()


def test_replies_go_right_after_otps():
    # The reply type's priority: after OTP, before bulk; the existing order is unchanged.
    from imali.messaging.models import MessageType, priority_for

    assert priority_for(MessageType.OTP) < priority_for(MessageType.REPLY) < priority_for(MessageType.MARKETING)
    assert priority_for(MessageType.REPLY) == Priority.TRANSACTIONAL == Priority.OTP + 1


def test_balance_from_the_bound_phone_matches_the_loan_page(bank, borrower, manager, client):
    mo(CLIENT_PHONE, "Balance")
    reply = OutboxMessage.objects.filter(number=CLIENT_PHONE).latest("id")
    assert reply.priority == Priority.TRANSACTIONAL and reply.client_id == borrower.pk
    assert segment_count(reply.text) <= 2
    client.force_login(manager)
    today = local_today(bank)
    for loan in Loan.objects.filter(client=borrower):
        figures = loan_page(loan=loan, as_of=today).figures
        expected = (f"Loan {loan.pk}: owing {format_money(figures.outstanding)}, arrears {format_money(figures.arrears_amount)}, "
                    f"next {figures.next_due_date:%Y-%m-%d} {format_money(figures.next_amount_due)}.")
        assert expected in reply.text
        # The loan page shows the very same figures.
        page = client.get(reverse("web:loan_detail", args=[loan.pk])).content.decode()
        for amount in (figures.outstanding, figures.arrears_amount, figures.next_amount_due):
            assert format_money(amount) in page
    assert any(loan_page(loan=x, as_of=today).figures.arrears_amount > 0 for x in Loan.objects.filter(client=borrower))


def test_local_language_alias_works_beside_english(bank, borrower, manager):
    services.alias_add(actor=manager, entity=bank, word="Tshalelo", command="balance")
    mo(CLIENT_PHONE, "TSHALELO")
    assert "owing" in last_reply(CLIENT_PHONE)
    with pytest.raises(Exception, match="already an English keyword"):
        services.alias_add(actor=manager, entity=bank, word="balance", command="help")


def test_balance_from_another_phone_needs_account_and_pin(bank, borrower, manager):
    mo(OTHER_PHONE, "BALANCE")
    assert "not registered" in last_reply(OTHER_PHONE)
    mo(OTHER_PHONE, f"BALANCE {borrower.number}")
    assert "BALANCE <account> <PIN>" in last_reply(OTHER_PHONE)
    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826", repeat="4826")
    mo(OTHER_PHONE, f"BALANCE {borrower.number} 4826")
    assert "owing" in last_reply(OTHER_PHONE)
    # The stored message keeps the account, not the PIN.
    assert InboundMessage.objects.latest("id").text == f"BALANCE {borrower.number} ****"


def test_brute_force_stops_at_the_lock_out_and_is_audited(bank, borrower, manager, caplog):
    # The audit entries of this test only: the fixtures' (made before) may hold "4826" by chance,
    # in a name or number from the factories' run-wide counters.
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826")
    caplog.set_level(logging.DEBUG)
    outcomes = []
    for guess in ("1111", "2222", "3333", "4826", "4826"):
        mo(OTHER_PHONE, f"BALANCE {borrower.number} {guess}")
        outcomes.append(BankingRequest.objects.latest("id").outcome)
    # Three wrong tries lock the PIN: even the right PIN is then refused.
    assert outcomes == ["balance_wrong_pin", "balance_wrong_pin", "balance_locked", "balance_locked", "balance_locked"]
    # The stranger's phone is told what an unknown account is told (a lock would say the account
    # has a PIN); the client's registered phone hears of the lock, once.
    assert set(replies_to(OTHER_PHONE)) == {f"{bank.name}: the account number or PIN is wrong."}
    assert [t for t in replies_to(CLIENT_PHONE) if "locked" in t] == [
        f"{bank.name}: your SMS banking PIN is locked for 60 minutes after 3 wrong tries from another phone. "
        "If that was not you, call your branch."]
    assert AuditEntry.objects.filter(action="smsbanking.pin_failed").count() == 3
    assert AuditEntry.objects.filter(action="smsbanking.pin_locked").count() == 1
    # The PIN is nowhere in clear: not in logs, messages, the request log or the audit.
    assert "4826" not in caplog.text
    assert not InboundMessage.objects.filter(text__contains="4826").exists()
    assert AuditEntry.objects.filter(id__gt=before).count() >= 5
    assert not AuditEntry.objects.filter(id__gt=before, after__icontains="4826").exists()
    row = BankingPin.objects.get(client=borrower)
    assert row.pin_hash.startswith("$argon2") and "4826" not in row.pin_hash


def test_a_lock_that_ran_out_gives_one_try_and_the_next_lock_is_twice_as_long(bank, borrower, manager):
    """Without this a guesser got a fresh set of tries every lock period for ever. Once a lock has
    run out the next wrong PIN locks again at once, for twice as long; the right PIN clears it all."""
    from datetime import timedelta

    from django.utils import timezone

    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826")

    def run_out():
        BankingPin.objects.filter(client=borrower).update(locked_until=timezone.now() - timedelta(seconds=1))

    for guess in ("1111", "2222", "3333"):
        mo(OTHER_PHONE, f"BALANCE {borrower.number} {guess}")
    locks = AuditEntry.objects.filter(action="smsbanking.pin_locked").order_by("id")
    assert [e["minutes"] for e in locks.values_list("after", flat=True)] == [60]
    run_out()
    mo(OTHER_PHONE, f"BALANCE {borrower.number} 5555")
    run_out()
    mo(OTHER_PHONE, f"BALANCE {borrower.number} 6666")
    assert [e["minutes"] for e in locks.values_list("after", flat=True)] == [60, 120, 240]
    row = BankingPin.objects.get(client=borrower)
    assert timedelta(minutes=239) < row.locked_until - timezone.now() <= timedelta(minutes=240)
    # The client's phone is told each lock's real length, in words.
    notices = [t for t in replies_to(CLIENT_PHONE) if "locked" in t]
    assert [n.split("locked for ")[1].split(" after")[0] for n in notices] == ["60 minutes", "120 minutes", "4 hours"]
    # While locked even the right PIN is refused; once it runs out the right PIN answers and clears the count.
    mo(OTHER_PHONE, f"BALANCE {borrower.number} 4826")
    assert BankingRequest.objects.latest("id").outcome == "balance_locked"
    run_out()
    mo(CLIENT_PHONE, f"BALANCE {borrower.number} 4826")
    assert BankingRequest.objects.latest("id").outcome == "balance_pin"
    row = BankingPin.objects.get(client=borrower)
    assert (row.failures, row.locked_until) == (0, None)
    # A later wrong try starts from the first of the entity's tries again.
    mo(OTHER_PHONE, f"BALANCE {borrower.number} 7777")
    assert BankingRequest.objects.latest("id").outcome == "balance_wrong_pin"


def test_a_lock_is_said_in_hours_and_days_rounded_up():
    from imali.core.formatting import duration_text

    assert [duration_text(m) for m in (60, 179, 180, 181, 4319, 4320, 61440)] == [
        "60 minutes", "179 minutes", "3 hours", "4 hours", "72 hours", "3 days", "43 days"]


def test_rate_limit_per_number(bank, manager):
    services.settings_update(actor=manager, entity=bank, data={"requests_per_hour": 3})
    for _ in range(6):
        mo(OTHER_PHONE, "HELP")
    assert [r for r in BankingRequest.objects.order_by("id").values_list("outcome", flat=True)] == [
        "help", "help", "help", "rate_limited", "rate_limited", "rate_limited"]
    # One answer says so; the next refusals cost nothing.
    assert len(replies_to(OTHER_PHONE)) == 4 and "try again later" in last_reply(OTHER_PHONE)


@pytest.mark.parametrize(("pin", "ok"), [("4826", True), ("482613", True), ("1234", False), ("9876", False),
                                         ("1111", False), ("123", False), ("1234567", False), ("12a4", False), ("٤٨٢٦", False)])
def test_pin_rules(pin, ok):
    assert (rules.pin_problem(pin) == "") is ok


def test_pin_set_by_sms_with_a_one_time_code(bank, borrower):
    mo(CLIENT_PHONE, "PIN")
    otp = OutboxMessage.objects.filter(number=CLIENT_PHONE).latest("id")
    assert otp.priority == Priority.OTP and "******" in otp.text
    code = unseal_for_submit(otp.text, otp.idempotency_key).split("code is ")[1][:6]
    assert code.isdigit() and code not in otp.text
    mo(CLIENT_PHONE, "PIN 000000 4826" if code != "000000" else "PIN 111111 4826")
    assert "wrong" in last_reply(CLIENT_PHONE)
    mo(CLIENT_PHONE, f"PIN {code} 4826")
    assert "PIN is set" in last_reply(CLIENT_PHONE)
    assert BankingPin.objects.get(client=borrower).set_via == "sms"
    assert not InboundMessage.objects.filter(text__contains="4826").exists()
    assert not InboundMessage.objects.filter(text__contains=code).exists()
    assert PinChange.objects.get().used
    # The code works once.
    mo(CLIENT_PHONE, f"PIN {code} 5937")
    assert "expired" in last_reply(CLIENT_PHONE)


def test_stop_and_start(bank, borrower):
    borrower.marketing_consent = True
    borrower.save()
    mo(CLIENT_PHONE, "STOP")
    assert MarketingOptOut.objects.filter(number=CLIENT_PHONE).exists()
    assert "START" in last_reply(CLIENT_PHONE)
    mo(CLIENT_PHONE, "start")
    assert not MarketingOptOut.objects.filter(number=CLIENT_PHONE).exists()
    borrower.refresh_from_db()
    assert borrower.marketing_consent
    assert AuditEntry.objects.filter(action="smsbanking.marketing_started").exists()


def test_long_balance_fits_two_segments(bank, manager, product):
    from .conftest import make_client, make_loan

    client = make_client(bank, cellphone=CLIENT_PHONE)
    for _ in range(5):
        make_loan(entity=bank, actor=manager, client=client, product=product, principal="500", days_ago=5)
    mo(CLIENT_PHONE, "BALANCE")
    text = last_reply(CLIENT_PHONE)
    assert segment_count(text) <= 2 and "more loans" in text


def test_other_entity_never_answers_for_this_one(bank, other_entity, borrower):
    # A message to another lender's address from a phone this lender knows is answered by this lender only.
    mo(CLIENT_PHONE, "BALANCE", to="Other")
    assert OutboxMessage.objects.filter(entity=bank).count() == 1
    assert not OutboxMessage.objects.filter(entity=other_entity).exists()


def test_officer_phone_is_not_the_client_phone(officer):
    assert officer.cellphone == OFFICER_PHONE


@pytest.mark.parametrize("text", ["BALANCE ² 4826", "BALANCE 1001 ٤٨٢٦", "BALANCE 1001 4826 9"])
def test_odd_digits_never_leave_a_pin_in_clear(bank, borrower, text):
    # '²'.isdigit() is True but int('²') raises: the account must be plain ASCII digits.
    message = mo(OTHER_PHONE, text)
    message.refresh_from_db()
    assert "4826" not in message.text and "٤٨٢٦" not in message.text
    assert "digits only" in last_reply(OTHER_PHONE)


def test_a_failing_command_still_masks_the_stored_pin(bank, borrower, manager, monkeypatch, caplog):
    from imali.smsbanking import engine
    from imali.smsbanking.models import Command

    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826", repeat="4826")

    def broken(ctx):  # fault injection: any bug or database error in the command
        raise RuntimeError("boom 4826")

    monkeypatch.setitem(engine.HANDLERS, Command.BALANCE, broken)
    message = mo(OTHER_PHONE, f"BALANCE {borrower.number} 4826")
    message.refresh_from_db()
    assert message.text == f"BALANCE {borrower.number} ****" and message.handled
    assert BankingRequest.objects.get(inbound=message).outcome == "failed"
    assert "4826" not in caplog.text


def test_wrong_pin_answer_does_not_tell_which_accounts_have_a_pin(bank, borrower, manager):
    from .conftest import make_client

    without_pin = make_client(bank, cellphone="+27825550188", name="Sipho", id_number=factories.SA_IDS[1][0],
                              date_of_birth=factories.SA_IDS[1][1], gender="M")
    services.pin_set(actor=manager, entity=bank, client=borrower, pin="4826")
    answers = []
    for account in (borrower.number, without_pin.number, 987654):
        mo(OTHER_PHONE, f"BALANCE {account} 5937")
        answers.append(last_reply(OTHER_PHONE))
    assert len(set(answers)) == 1 and "wrong" in answers[0]
