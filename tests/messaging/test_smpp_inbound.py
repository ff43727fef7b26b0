"""Inbound over SMPP from the local SMSC: long messages sent in parts (UDH with 8- and 16-bit
references, or the SAR optional parameters), in any order, stored once and whole; the fallback
key when the SMSC gives no id; addressing (TON/NPI) and bind modes per gateway. Real SMPP on
127.0.0.1, bounded."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from imali.messaging.dispatch import Dispatcher, DispatchPolicy
from imali.messaging.inbound import MISSING_PART, inbound_part_receive, inbound_parts_expire
from imali.messaging.models import Gateway, InboundMessage, InboundPart, OutboxMessage
from imali.messaging.segments import split
from imali.messaging.services import message_enqueue
from imali.peers.smsc import SmscConfig, run_in_thread

LONG_GSM = ("Good day, I would like to know my outstanding balance and when my next instalment is due, "
            "because I want to settle the loan early this month if the settlement amount allows it. Thanks")
LONG_UCS2 = ("Dumela ✓ ke kopa go itse gore ke duetse bokae ka kgwedi eno le gore ke sala ka bokae mo kadimong "
             "ya me. Ke batla go e duela yotlhe pele ga bofelo jwa kgwedi. Ke a leboga.")
assert len(split(LONG_GSM)[1]) == 2 and len(split(LONG_UCS2)[1]) == 3


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig())
    yield peer
    peer.stop()


def _gateway(peer, **fields):
    return Gateway.objects.create(name=fields.pop("name", "local"), host="127.0.0.1", port=peer.port,
                                  system_id="imali", password="secret", **fields)


def _collect(dispatcher, *, count, seconds=60):
    deadline = time.monotonic() + seconds
    while InboundMessage.objects.count() < count and time.monotonic() < deadline:
        dispatcher.apply_events()
        time.sleep(0.02)
    # Anything still on its way (a part too many would show up here).
    time.sleep(0.2)
    dispatcher.apply_events()


@pytest.mark.parametrize(("text", "concat", "order"), [
    (LONG_GSM, "udh8", [2, 1]),
    (LONG_UCS2, "udh16", [3, 1, 2]),
    (LONG_GSM, "sar", [2, 1]),
])
def test_long_inbound_message_is_stored_once_and_whole(entity, smsc, gateway_transports, text, concat, order):
    dispatcher = Dispatcher(gateway_transports(_gateway(smsc)), DispatchPolicy())
    smsc.inject_mo(number="+27821234567", text=text, concat=concat, order=order)
    _collect(dispatcher, count=1)
    stored = list(InboundMessage.objects.all())
    assert [m.text for m in stored] == [text]
    assert not stored[0].incomplete and stored[0].number == "+27821234567"
    assert InboundPart.objects.count() == 0


def test_parts_survive_a_restart_and_may_reach_different_consumers(entity, smsc, gateway_transports):
    gateway = _gateway(smsc)
    first = Dispatcher(gateway_transports(gateway), DispatchPolicy())
    smsc.inject_mo(number="+27821234567", text=LONG_UCS2, concat="udh8", order=[2])
    deadline = time.monotonic() + 60
    while not InboundPart.objects.exists() and time.monotonic() < deadline:
        first.apply_events()
        time.sleep(0.02)
    for t in first.transports.values():
        t.close()  # the consumer stops with one part kept (in the database, not in its memory)
    assert InboundPart.objects.count() == 1 and not InboundMessage.objects.exists()
    # The other parts come to another consumer: same SMSC reference, so they complete the set.
    reference = InboundPart.objects.get().reference
    second = Dispatcher(gateway_transports(gateway), DispatchPolicy())
    smsc.call(lambda: setattr(smsc.peer, "_mo_refs", iter([reference])))
    smsc.inject_mo(number="+27821234567", text=LONG_UCS2, concat="udh8", order=[3, 1])
    _collect(second, count=1)
    assert [m.text for m in InboundMessage.objects.all()] == [LONG_UCS2]


def test_incomplete_set_is_stored_after_the_timeout_flagged(entity):
    common = {"gateway": "local", "number": "+27821234567", "to_address": "Imali", "reference": 7, "total": 3}
    inbound_part_receive(provider_id="p1", seq=1, text="First part, ", **common)
    inbound_part_receive(provider_id="p3", seq=3, text="third part.", **common)
    inbound_part_receive(provider_id="p3", seq=3, text="third part.", **common)  # sent twice: kept once
    assert InboundPart.objects.count() == 2 and not InboundMessage.objects.exists()
    assert inbound_parts_expire(older_than=dt.timedelta(minutes=10)) == 0  # not old enough yet
    InboundPart.objects.update(received_at=timezone.now() - dt.timedelta(minutes=11))
    assert inbound_parts_expire(older_than=dt.timedelta(minutes=10)) == 1
    message = InboundMessage.objects.get()
    assert message.incomplete and message.text == f"First part, {MISSING_PART}third part."
    assert InboundPart.objects.count() == 0


def test_identical_messages_without_an_smsc_id_are_each_stored(entity, smsc, gateway_transports):
    dispatcher = Dispatcher(gateway_transports(_gateway(smsc)), DispatchPolicy())
    # The same text twice within the same minute, with no id from the SMSC: two messages.
    smsc.inject_mo(number="+27821234567", text="Balance?", with_id=False)
    smsc.inject_mo(number="+27821234567", text="Balance?", with_id=False)
    _collect(dispatcher, count=2)
    stored = list(InboundMessage.objects.order_by("id"))
    assert [m.text for m in stored] == ["Balance?", "Balance?"]
    assert len({m.provider_id for m in stored}) == 2


@pytest.mark.parametrize(("fields", "expected"), [
    ({"source_addr": "Imali"}, ("Imali", 5, 0)),
    ({"source_addr": "32100"}, ("32100", 3, 0)),
    ({"source_addr": "+27820001111"}, ("27820001111", 1, 1)),
    ({"source_addr": "32100", "source_addr_ton": 0, "source_addr_npi": 1}, ("32100", 0, 1)),
])
def test_sender_addressing_per_gateway(funded, smsc, gateway_transports, fields, expected):
    dispatcher = Dispatcher(gateway_transports(_gateway(smsc, **fields)), DispatchPolicy())
    message_enqueue(entity=funded, number="+27821234567", text="Hello", message_type="new_loan", idempotency_key="a")
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    bind, source, ton, npi, dest_ton, dest_npi = smsc.call(lambda: smsc.peer.addressing[-1])
    assert (source, ton, npi) == expected and (dest_ton, dest_npi) == (1, 1) and bind == "tx"  # by default submits go on a transmitter session


def test_transmitter_and_receiver_binds(funded, smsc, gateway_transports):
    gateway = _gateway(smsc, bind_mode="tx_rx")
    dispatcher = Dispatcher(gateway_transports(gateway), DispatchPolicy())
    assert smsc.peer.stats["binds_tx"] == 1 and smsc.peer.stats["binds_rx"] == 1 and not smsc.peer.stats["binds_trx"]
    for i in range(5):
        message_enqueue(entity=funded, number=f"+2782123456{i}", text="Hello", message_type="new_loan",
                        idempotency_key=f"b{i}")
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    # Submitted on the transmitter, receipts back on the receiver.
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {"delivered"}
    assert {a[0] for a in smsc.call(lambda: list(smsc.peer.addressing))} == {"tx"}
    smsc.inject_mo(number="+27821234560", text="Thanks")
    _collect(dispatcher, count=1)
    assert InboundMessage.objects.get().text == "Thanks"
