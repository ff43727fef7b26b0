"""The answering worker: the receiving side stores a burst in a few statements and queues it; the
worker answers a batch in a few statements per message (query-count pins), in order, each message
once, and one failing message never holds up the others."""

import itertools
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.messaging.inbound import inbound_receive_many
from imali.messaging.models import InboundMessage, MessageType, OutboxMessage, Priority
from imali.smsbanking import engine
from imali.smsbanking.answering import Answerer, answer_pending
from imali.smsbanking.models import AnswerJob, BankingRequest, Command

from .conftest import make_client, make_loan

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def burst(numbers, text):
    events = [SimpleNamespace(gateway="burst", provider_id=f"b{next(_ids)}", number=n, to_address="Imali", text=text)
              for n in numbers]
    return inbound_receive_many(events)


@pytest.fixture
def borrowers(bank, manager, product):
    clients = []
    for i in range(4):
        client = make_client(bank, cellphone=f"+2782600{i:04d}", name=f"Client{i}")
        make_loan(entity=bank, actor=manager, client=client, product=product, days_ago=40)
        clients.append(client)
    return clients


def queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def test_a_burst_is_stored_in_a_few_statements_whatever_its_size(bank, borrowers):
    small = queries(lambda: burst([borrowers[0].cellphone, "+27820000001"], "HELP"))
    AnswerJob.objects.all().delete()
    large = queries(lambda: burst([c.cellphone for c in borrowers[1:]] + ["+27820000002", "+27820000003"], "HELP"))
    assert large == small <= 11  # ten, and the lender's keyword aliases (to mask a PIN on receipt)
    stored = InboundMessage.objects.filter(gateway="burst")
    assert stored.count() == 7 and AnswerJob.objects.count() == 5
    # Matched to the client by number, as one at a time.
    assert {m.client_id for m in stored if m.number == borrowers[0].cellphone} == {borrowers[0].pk}


def test_the_same_burst_again_stores_nothing(bank, borrowers):
    events = [SimpleNamespace(gateway="burst", provider_id=f"same{i}", number=c.cellphone, to_address="Imali", text="HELP")
              for i, c in enumerate(borrowers)]
    assert len(inbound_receive_many(events)) == 4
    assert inbound_receive_many(events) == []
    assert InboundMessage.objects.count() == 4 and AnswerJob.objects.count() == 4


def test_statements_per_answer_are_pinned(bank, borrowers):
    """HELP and BALANCE from registered phones: the savepoint around each message and nothing else
    per message; everything else (the loans and schedules of the balances too) per batch."""
    answerer = Answerer(cache_seconds=60)
    burst(["+27820000009"], "HELP")
    answerer.step()  # the lender's settings are now cached, as in a running worker
    burst(["+27820000010"], "HELP")
    one_help = queries(answerer.step)
    burst([f"+278200001{i:02d}" for i in range(6)], "HELP")
    six_help = queries(answerer.step)
    assert (six_help - one_help) / 5 <= 2, (one_help, six_help)  # the savepoint around each message
    assert one_help <= 40  # the batch: jobs, messages, officers, clients, rate counts, ledger, log, marks
    burst([borrowers[0].cellphone], "BALANCE")
    one_balance = queries(answerer.step)
    burst([c.cellphone for c in borrowers[1:]], "BALANCE")
    three_balance = queries(answerer.step)
    per_balance = (three_balance - one_balance) / 2
    assert per_balance <= PER_BALANCE_READS, (one_balance, three_balance)
    replies = OutboxMessage.objects.filter(message_type=MessageType.REPLY, number__in=[c.cellphone for c in borrowers])
    assert replies.count() == 4 and all("owing" in r.text for r in replies)
    assert {r.priority for r in replies} == {Priority.TRANSACTIONAL}


# The savepoint around each message (two statements): the loans and schedules are read per chunk.
PER_BALANCE_READS = 2


def test_every_message_is_answered_once_and_logged(bank, borrowers):
    burst([c.cellphone for c in borrowers], "BALANCE")
    assert Answerer(batch=3, cache_seconds=0).run_until_empty() == 4
    assert Answerer(cache_seconds=0).run_until_empty() == 0
    assert BankingRequest.objects.filter(command=Command.BALANCE, outcome="balance").count() == 4
    assert not AnswerJob.objects.exists()
    assert InboundMessage.objects.filter(handled=True).count() == 4


def test_a_failing_message_does_not_hold_up_the_batch(bank, borrowers, monkeypatch, caplog):
    real = engine.HANDLERS[Command.HELP]

    def broken_for_one(ctx):  # fault injection: a bug or a database error on one message only
        if ctx.message.number == borrowers[2].cellphone:
            raise RuntimeError("boom")
        return real(ctx)

    monkeypatch.setitem(engine.HANDLERS, Command.HELP, broken_for_one)
    burst([c.cellphone for c in borrowers], "HELP")
    answer_pending()
    outcomes = dict(BankingRequest.objects.values_list("number", "outcome"))
    assert outcomes.pop(borrowers[2].cellphone) == "failed"
    assert set(outcomes.values()) == {"help"}
    assert OutboxMessage.objects.filter(message_type=MessageType.REPLY).count() == 3


def test_a_burst_from_one_number_keeps_to_the_rate_limit(bank, manager):
    from imali.smsbanking import services

    services.settings_update(actor=manager, entity=bank, data={"requests_per_hour": 3})
    for _ in range(6):
        burst(["+27820000077"], "HELP")
    answer_pending()
    outcomes = list(BankingRequest.objects.order_by("inbound_id").values_list("outcome", flat=True))
    assert outcomes == ["help"] * 3 + ["rate_limited"] * 3
    # Only the first refusal is answered.
    assert OutboxMessage.objects.filter(number="+27820000077").count() == 4


def test_nothing_is_queued_twice_and_other_lenders_messages_are_dropped(entity):
    burst(["+27820000055"], "HELP")  # an entity without SMS banking, an unknown number
    assert answer_pending() == 1
    assert not BankingRequest.objects.exists() and not AnswerJob.objects.exists()


def test_make_demo_runs_the_answering_worker():
    from imali.core.stack import stack_processes

    specs = {p.name: p for p in stack_processes(host="127.0.0.1", port=8000)}
    assert specs["sms-banking-answerer"].argv[-1] == "smsbanking_answer"
    assert "sms-dispatcher" in specs


def test_the_command_answers_what_is_queued(bank, borrowers):
    from io import StringIO

    from django.core.management import call_command

    burst([c.cellphone for c in borrowers], "BALANCE")
    out = StringIO()
    call_command("smsbanking_answer", "--until-empty", stdout=out)
    assert "Answered 4 messages" in out.getvalue()
    assert OutboxMessage.objects.filter(message_type=MessageType.REPLY).count() == 4


def test_a_reply_is_claimed_before_a_bulk_backlog_queued_earlier(bank):
    """The dispatcher's next claim takes the answer first, ahead of bulk messages waiting longer."""
    import datetime as dt

    from django.utils import timezone

    from imali.messaging.dispatch import claim_batch

    earlier = timezone.now() - dt.timedelta(minutes=5)
    OutboxMessage.objects.bulk_create([
        OutboxMessage(entity=bank, channel="sms", number=f"+2782700{i:04d}", country="ZA",
                      message_type=MessageType.ARREARS, text="Arrears notice", segments=1, credits=1, priority=Priority.BULK,
                      idempotency_key=f"bulk{i}", next_attempt_at=earlier, created_at=earlier) for i in range(5)])
    burst(["+27820000123"], "HELP")
    answer_pending()
    first, *rest = claim_batch(limit=3, lease_seconds=30)
    assert first.number == "+27820000123" and first.priority == Priority.TRANSACTIONAL
    assert [c.priority for c in rest] == [Priority.BULK, Priority.BULK]  # the backlog was claimable


def test_credits_for_part_of_a_batch_queue_as_many_replies_as_they_pay_for(operator):
    from imali.messaging.credits import credit_balance, credits_assign
    from imali.messaging.segments import segment_count
    from imali.smsbanking import services
    from tests import factories

    lender = factories.make_entity(country="ZA")
    services.settings_update(actor=factories.make_admin(entity=lender), entity=lender,
                             data={"enabled": True, "service_address": "Imali"})
    cost = segment_count(engine.help_(SimpleNamespace(entity=lender, aliases={}, officer=None,
                                                      reply=lambda text: ("", text, None, None))).replies[0][1])
    assert cost == 2  # the HELP answer: three of them need six credits
    credits_assign(actor=operator, entity=lender, channel="sms", amount=3)
    burst(["+27820000302", "+27820000303", "+27820000304"], "HELP")
    answer_pending()
    queued = OutboxMessage.objects.filter(entity=lender, message_type=MessageType.REPLY)
    assert queued.count() == 1 and credit_balance(entity=lender) == 1  # as many as the credits pay for
    outcomes = sorted(BankingRequest.objects.values_list("outcome", flat=True))
    assert outcomes == ["help", "help (reply not queued)", "help (reply not queued)"]


def test_a_pin_is_never_stored_in_clear_even_before_the_worker_answers(bank, borrowers, manager):
    from imali.smsbanking import services

    services.pin_set(actor=manager, entity=bank, client=borrowers[0], pin="4826", repeat="4826")
    burst(["+27825550001"], f"BALANCE {borrowers[0].number} 4826")
    # Received, not yet answered (the worker may be down): masked already, the original only sealed.
    stored = InboundMessage.objects.get(gateway="burst", number="+27825550001")
    assert stored.text == f"BALANCE {borrowers[0].number} ****"
    job = AnswerJob.objects.get(inbound=stored)
    assert job.sealed and "4826" not in job.sealed
    # The worker reads the original, answers with the balance, and leaves the text masked.
    assert answer_pending() == 1
    assert BankingRequest.objects.get(inbound=stored).outcome == "balance_pin"
    assert InboundMessage.objects.get(pk=stored.pk).text == f"BALANCE {borrowers[0].number} ****"
    assert not AnswerJob.objects.exists()


def test_a_text_without_a_secret_is_stored_as_sent(bank, borrowers):
    burst(["+27825550002"], "Hello 123, where is my branch?")
    stored = InboundMessage.objects.get(gateway="burst", number="+27825550002")
    # An unknown word may precede a PIN, so it is masked while queued; the engine then keeps it masked.
    assert stored.text == "Hello ***, where is my branch?"
    burst(["+27825550003"], "HELP")
    assert InboundMessage.objects.get(gateway="burst", number="+27825550003").text == "HELP"
