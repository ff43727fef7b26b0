"""BALANCE, an officer collection and a sheet code end to end: the phone sends through the local
SMSC over real SMPP on 127.0.0.1, the dispatcher's receiving side stores the message and queues it,
the answering worker answers it, the dispatcher submits the answer, and the phone receives it.
Bounded in time."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from imali.messaging.dispatch import Dispatcher, DispatchPolicy, transports_from_gateways
from imali.messaging.models import Gateway
from imali.peers.smsc import SmscConfig, run_in_thread
from imali.smsbanking import services
from imali.smsbanking.answering import Answerer
from imali.smsbanking.models import CollectionStatus, FieldCollection

from .conftest import CLIENT_PHONE, OFFICER_PHONE, OTHER_PHONE


@pytest.fixture
def wire(bank):
    peer = run_in_thread(SmscConfig())
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=peer.port, system_id="imali", password="secret")
    transports = transports_from_gateways([gateway])
    assert transports["local"].wait_bound(5)
    dispatcher = Dispatcher(transports, DispatchPolicy())
    yield peer, dispatcher
    for t in transports.values():
        t.close()
    peer.stop()


def phone_inbox(peer, number):
    return peer.call(lambda: [m.text for m in peer.peer.phones.get(number, []) if not m.mo])


def send_and_wait(peer, dispatcher, number, text, *, replies_to=None, count=1, seconds=60):  # returns at the answer
    """The phone sends `text`; run the dispatcher until `replies_to` has `count` more messages."""
    replies_to = replies_to or number
    before = len(phone_inbox(peer, replies_to))
    peer.inject_mo(number=number, text=text)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dispatcher.apply_events()
        Answerer(cache_seconds=0).run_until_empty()
        dispatcher.run(until_idle=True, max_seconds=2, idle_sleep=0.02)
        inbox = phone_inbox(peer, replies_to)
        if len(inbox) >= before + count:
            return inbox[before:]
        time.sleep(0.05)
    raise AssertionError(f"no answer to {text!r} within {seconds}s")


def test_balance_over_smpp(wire, borrower, manager):
    peer, dispatcher = wire
    [answer] = send_and_wait(peer, dispatcher, CLIENT_PHONE, "BALANCE")
    assert answer.startswith("ZAR on ") and answer.count("Loan ") == 2 and "arrears" in answer
    services.pin_set(actor=manager, entity=borrower.entity, client=borrower, pin="4826")
    [answer] = send_and_wait(peer, dispatcher, OTHER_PHONE, f"BALANCE {borrower.number} 4826")
    assert answer.count("owing") == 2
    [answer] = send_and_wait(peer, dispatcher, OTHER_PHONE, "what?")
    assert "HELP" in answer


def test_officer_collection_and_sheet_over_smpp(wire, officer, borrower, manager):
    peer, dispatcher = wire
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    [answer] = send_and_wait(peer, dispatcher, OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} 120")
    assert "recorded 1 payment," in answer
    assert "recorded your payment of ZAR 120.00" in phone_inbox(peer, CLIENT_PHONE)[-1]
    [answer] = send_and_wait(peer, dispatcher, OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} 120")
    assert "Nothing recorded" in answer and FieldCollection.objects.count() == 1

    sheet = services.sheet_issue(actor=manager, entity=borrower.entity, officer=officer,
                                 due_by=timezone.localdate() + dt.timedelta(days=40))
    dispatcher.run(until_idle=True, max_seconds=60, idle_sleep=0.02)  # returns once the sheet's SMS is out
    assert sheet.code in phone_inbox(peer, OFFICER_PHONE)[-1]
    [answer] = send_and_wait(peer, dispatcher, OFFICER_PHONE, sheet.code)
    assert f"sheet {sheet.code} recorded 2 payments" in answer
    assert FieldCollection.objects.filter(status=CollectionStatus.UNVERIFIED).count() == 3
    [answer] = send_and_wait(peer, dispatcher, OFFICER_PHONE, sheet.code)
    assert "recorded already" in answer and FieldCollection.objects.count() == 3
