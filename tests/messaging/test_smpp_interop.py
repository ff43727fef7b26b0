"""The SMPP gateway against SMSCs that behave as real ones do rather than as our own: message ids
written one way in submit_sm_resp and another in the receipt, receipts that carry only optional
parameters or report intermediate states, refusals by command_status, binds refused, the SMSC's
own unbind / enquire_link / generic_nack, and mobile-originated messages in every data coding.
Real SMPP against the local SMSC on 127.0.0.1 (ephemeral ports), each test bounded."""

import time

import pytest
from django.db.models import Count

from imali.messaging.dispatch import Dispatcher, DispatchPolicy
from imali.messaging.models import (
    DeliveryReport,
    Gateway,
    InboundMessage,
    MarketingOptOut,
    OutboxMessage,
    Route,
)
from imali.messaging.services import message_enqueue
from imali.peers.smsc import SmscConfig, run_in_thread
from imali.peers.smsc import pdu as P
from tests import factories

FAST = DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.05, backoff_max=0.2)
# Ids well past 9, so hexadecimal and decimal differ (0xabcde is 703710).
FIRST_ID = 0xABCDE


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig(first_message_id=FIRST_ID))
    yield peer
    peer.stop()


def gateway_for(peer, **fields):
    return Gateway.objects.create(name="local", host="127.0.0.1", port=peer.port, system_id="imali", password="secret",
                                  **fields)


def enqueue(entity, n, *, start=0):
    return [message_enqueue(entity=entity, number=f"+2782{i:07d}", text="Your loan is approved",
                            message_type="new_loan", idempotency_key=f"new_loan:{i}") for i in range(start, start + n)]


def statuses(entity):
    return dict(OutboxMessage.objects.filter(entity=entity).values("status").annotate(n=Count("id"))
                .values_list("status", "n"))


def run(dispatcher, seconds=15):
    dispatcher.run(until_idle=True, max_seconds=seconds, idle_sleep=0.02)


# -- message ids --------------------------------------------------------------------------------
@pytest.mark.parametrize(("resp_id", "receipt_id", "style", "id_format"), [
    ("HEX", "hex", "text", "auto"),  # upper case answered, lower case reported
    ("hex0", "hex", "tlv", "auto"),  # zero-padded answered, bare reported (receipted_message_id only)
    ("dec0", "dec", "both", "auto"),
    ("hex", "dec", "text", "hex_dec"),  # the classic: hex in submit_sm_resp, decimal in the receipt
    ("dec", "HEX", "tlv", "dec_hex"),
    ("hex", "hex", "both", "exact"),
])
def test_receipt_naming_the_message_in_another_form_still_finds_it(funded, smsc, gateway_transports, resp_id, receipt_id,
                                                                   style, id_format):
    smsc.configure(resp_id_format=resp_id, receipt_id_format=receipt_id, receipt_style=style)
    gateway = gateway_for(smsc, receipt_id_format=id_format)
    enqueue(funded, 3)
    run(Dispatcher(gateway_transports(gateway), FAST))
    assert statuses(funded) == {"delivered": 3}


def test_automatic_ids_do_not_guess_a_change_of_base(funded, smsc, gateway_transports):
    """Hex "10" and decimal "10" are different messages: without the gateway saying so, a receipt
    in another base stays unmatched (the message Sent) rather than finish the wrong message."""
    smsc.configure(resp_id_format="hex", receipt_id_format="dec", receipt_style="text")
    gateway = gateway_for(smsc)
    enqueue(funded, 2)
    run(Dispatcher(gateway_transports(gateway), FAST), seconds=3)
    assert statuses(funded) == {"submitted": 2}
    assert set(DeliveryReport.objects.values_list("provider_message_id", "applied")) == {
        (str(FIRST_ID), False), (str(FIRST_ID + 1), False)}


# -- receipts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["both", "text", "tlv"])
def test_intermediate_receipts_leave_the_message_for_its_final_receipt(funded, smsc, gateway_transports, style):
    smsc.configure(intermediate_receipts=("ACCEPTD", "ENROUTE"), receipt_delay=0.5, receipt_style=style)
    gateway = gateway_for(smsc)
    enqueue(funded, 3)
    run(Dispatcher(gateway_transports(gateway), FAST))
    assert statuses(funded) == {"delivered": 3}
    assert smsc.peer.stats["receipts"] == 9


def test_intermediate_notifications_are_not_taken_for_replies(funded, smsc, gateway_transports):
    """esm_class 0x20 (intermediate delivery notification), as some SMSCs send them: neither a
    receipt nor a message from the phone."""
    smsc.configure(intermediate_receipts=("ENROUTE",), intermediate_esm_class=0x20, receipt_delay=0.5)
    gateway = gateway_for(smsc)
    enqueue(funded, 2)
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    run(dispatcher)
    time.sleep(0.2)
    dispatcher.apply_events()
    assert statuses(funded) == {"delivered": 2}
    assert smsc.peer.stats["receipts"] == 4 and InboundMessage.objects.count() == 0


@pytest.mark.parametrize(("state", "style"), [("EXPIRED", "tlv"), ("REJECTD", "text"), ("DELETED", "both"),
                                              ("UNKNOWN", "tlv")])
def test_final_receipt_states_fail_the_message_naming_the_state(funded, smsc, gateway_transports, state, style):
    smsc.configure(final_state=state, receipt_style=style)
    gateway = gateway_for(smsc)
    enqueue(funded, 2)
    run(Dispatcher(gateway_transports(gateway), FAST))
    assert statuses(funded) == {"failed": 2}
    assert state in OutboxMessage.objects.first().error


# -- submit_sm refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "words"), [
    (0x0B, "the phone number is not valid"),
    (0x65, "refused the message for good"),
    (0x66, "rejected the message"),
])
def test_permanent_refusals_fail_at_once_in_peoples_words(funded, smsc, gateway_transports, status, words):
    smsc.configure(submit_status=status)
    gateway = gateway_for(smsc)
    enqueue(funded, 2)
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    dispatcher.step()
    assert statuses(funded) == {"failed": 2}
    error = OutboxMessage.objects.first().error
    assert error.startswith("the SMSC ") and words in error and "status 0x" not in error


@pytest.mark.parametrize(("status", "words"), [
    (0x08, "system error; trying again"),
    (0x64, "could not take it for now; trying again"),
    (0x14, "queue is full; trying again"),
    (0x58, "send more slowly; trying again"),
])
def test_transient_refusals_are_retried_in_peoples_words(funded, smsc, gateway_transports, status, words):
    smsc.configure(submit_status=status)
    gateway = gateway_for(smsc)
    enqueue(funded, 1)
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    dispatcher.step()
    message = OutboxMessage.objects.get()
    assert message.status == "queued" and words in message.error
    smsc.configure(submit_status=0)
    run(dispatcher)
    assert statuses(funded) == {"delivered": 1}


def test_generic_nack_to_a_submit_is_judged_by_its_status_not_as_a_lost_line(funded, smsc, gateway_transports):
    smsc.configure(submit_nack=0x02)  # ESME_RINVCMDLEN: the same request would be refused again
    gateway = gateway_for(smsc)
    opened = gateway_transports(gateway)
    enqueue(funded, 1)
    Dispatcher(opened, FAST).step()
    message = OutboxMessage.objects.get()
    assert message.status == "failed" and message.error == "the SMSC could not read our request (ESME_RINVCMDLEN)"
    smsc.configure(submit_nack=0x58)  # throttling by generic_nack, as some SMSCs do
    enqueue(funded, 1, start=10)
    dispatcher = Dispatcher(opened, FAST)
    dispatcher.step()
    assert smsc.peer.stats["nacked_0x58"] == 1 + opened["local"].THROTTLE_RETRIES
    assert dispatcher.counters["throttled"] == 1 and opened["local"].is_up
    smsc.configure(submit_nack=0)
    run(dispatcher)
    assert statuses(funded) == {"failed": 1, "delivered": 1}


# -- the SMSC's own PDUs ------------------------------------------------------------------------
def test_smsc_enquire_link_generic_nack_and_unbind_keep_the_gateway_sending(funded, smsc, gateway_transports):
    gateway = gateway_for(smsc, bind_mode="trx")
    opened = gateway_transports(gateway)
    transport = opened["local"]
    smsc.send_to_sessions(P.ENQUIRE_LINK)
    smsc.send_to_sessions(P.GENERIC_NACK, P.ESME_RINVCMDID)
    enqueue(funded, 2)
    run(Dispatcher(opened, FAST))
    assert statuses(funded) == {"delivered": 2}
    binds = smsc.peer.stats["binds"]
    smsc.send_to_sessions(P.UNBIND)  # the SMSC goes down for maintenance, politely
    deadline = time.monotonic() + 10
    while smsc.peer.stats["binds"] == binds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smsc.peer.stats["binds"] == binds + 1 and transport.wait_bound(5)
    enqueue(funded, 2, start=10)
    run(Dispatcher(opened, FAST))
    assert statuses(funded) == {"delivered": 4}


# -- mobile-originated --------------------------------------------------------------------------
def _collect(dispatcher, *, count, seconds=10):
    deadline = time.monotonic() + seconds
    while InboundMessage.objects.count() < count and time.monotonic() < deadline:
        dispatcher.apply_events()
        time.sleep(0.02)
    time.sleep(0.2)
    dispatcher.apply_events()
    return list(InboundMessage.objects.order_by("id").values_list("text", flat=True))


def test_mobile_originated_in_every_data_coding(funded, smsc, gateway_transports):
    gateway = gateway_for(smsc)
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    smile = "Ke a leboga 😀 thank you".encode("utf-16-be")
    split_at = smile.index("😀".encode("utf-16-be")) + 2  # between the emoji's two surrogates
    sent = [
        ({"parts": ["Café à Windhoek".encode("latin-1")], "data_coding": 0x03}, "Café à Windhoek"),
        ({"parts": [b"BAL"], "data_coding": 0x01}, "BAL"),
        # (Digits of a text that is no SMS-banking command are starred as it is stored.)
        ({"parts": [bytes([0x00, 0x7F, 0xFF, 0x10])], "data_coding": 0x04}, "[binary message, * bytes]"),
        ({"parts": [b"\x01\x02"], "data_coding": 0x02}, "[binary message, * bytes]"),
        ({"parts": [smile[:split_at], smile[split_at:]], "data_coding": 0x08}, "Ke a leboga 😀 thank you"),
        ({"parts": ["Dumela ✓".encode("utf-16-be")], "data_coding": 0x08, "in_payload_tlv": True}, "Dumela ✓"),
        ({"parts": [b""], "data_coding": 0x00}, ""),
    ]
    for options, _ in sent:
        smsc.inject_mo_raw(number="+27821234567", **options)
        _collect(dispatcher, count=InboundMessage.objects.count() + 1)
    assert _collect(dispatcher, count=len(sent)) == [text for _, text in sent]


# -- binds refused ------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "words"), [
    (P.ESME_RINVPASWD, "the SMSC refused the password (ESME_RINVPASWD)"),
    (P.ESME_RBINDFAIL, "the SMSC refused the bind (ESME_RBINDFAIL)"),
    (P.ESME_RALYBND, "this account is bound already (ESME_RALYBND)"),
])
def test_refused_bind_is_retried_and_its_reason_shown_on_the_messages(funded, smsc, gateway_transports, status, words):
    smsc.configure(bind_status=status)
    gateway = gateway_for(smsc, bind_mode="trx")
    opened = gateway_transports(gateway, bound=False)
    transport = opened["local"]
    deadline = time.monotonic() + 15
    while (not transport.problem or smsc.peer.stats["bind_refused"] < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert words in transport.problem and not transport.is_up
    enqueue(funded, 1)
    dispatcher = Dispatcher(opened, FAST)
    dispatcher.step()
    message = OutboxMessage.objects.get()
    assert message.status == "queued" and words in message.error
    smsc.configure(bind_status=0)  # the SMSC's operator fixed the account
    assert transport.wait_bound(15) and transport.problem == ""
    run(dispatcher)
    assert statuses(funded) == {"delivered": 1}


def test_nothing_listening_is_named(funded, gateway_transports):
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=1, system_id="imali", password="secret",
                                     bind_mode="trx")
    transport = gateway_transports(gateway, bound=False)["local"]
    deadline = time.monotonic() + 10
    while not transport.problem and time.monotonic() < deadline:
        time.sleep(0.05)
    assert transport.problem == "the SMSC at 127.0.0.1:1 refused the connection (nothing listening there, or a firewall)"


@pytest.mark.parametrize(("written", "ton", "country", "stored"), [
    ("0821234567", 2, "ZA", "+27821234567"),  # national, trunk 0
    ("821234567", 2, "ZA", "+27821234567"),  # national, no trunk 0
    ("0821234567", 0, "ZA", "+27821234567"),  # TON "unknown", but no country code starts with 0
    ("27821234567", 0, "ZA", "+27821234567"),  # TON "unknown", international digits
    ("0821234567", 2, "", "0821234567"),  # no country to read it in: kept as written, not "+0821234567"
])
def test_a_reply_from_a_nationally_written_number_reaches_its_client(funded, smsc, gateway_transports, written, ton, country,
                                                                      stored):
    client = factories.make_client(entity=funded, cellphone="+27821234567")
    gateway = gateway_for(smsc)
    Route.objects.create(gateway=gateway, country=country)
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    smsc.inject_mo_raw(number=written, source_ton=ton, parts=[b"STOP"], data_coding=0x00)
    _collect(dispatcher, count=1)
    message = InboundMessage.objects.get()
    assert message.number == stored
    assert (message.client_id == client.id) == (stored == "+27821234567")
    assert MarketingOptOut.objects.filter(number="+27821234567").exists() == (stored == "+27821234567")


# -- what an SMSC sends that cannot be read ------------------------------------------------------
def _raw_deliver(peer, sm: P.ShortMessage) -> None:
    """One deliver_sm as the SMSC wrote it, whatever it holds."""
    peer.call(peer.peer._deliver, None, sm.encode())


@pytest.mark.parametrize("unreadable", [
    # A part of a long MO whose SAR total and sequence parameters are empty.
    P.ShortMessage(source_addr="27821234567", destination_addr="Imali", short_message=b"BAL",
                   tlvs={P.TLV_SAR_MSG_REF_NUM: b"\x00\x01", P.TLV_SAR_TOTAL_SEGMENTS: b"",
                         P.TLV_SAR_SEGMENT_SEQNUM: b""}),
    # A receipt whose receipted_message_id is hexadecimal digits past what a decimal string may hold.
    P.ShortMessage(source_addr="27821234567", destination_addr="Imali", esm_class=0x04,
                   tlvs={P.TLV_RECEIPTED_MESSAGE_ID: b"f" * 4000 + b"\0", P.TLV_MESSAGE_STATE: bytes([2])}),
])
def test_a_deliver_sm_that_cannot_be_read_is_dropped_and_the_session_reads_on(funded, smsc, gateway_transports, unreadable):
    # Before: the exception ended the session's reader task, so every later receipt and reply of
    # that gateway was lost while the session stayed bound and kept sending.
    gateway = gateway_for(smsc, receipt_id_format="dec_hex")
    dispatcher = Dispatcher(gateway_transports(gateway), FAST)
    _raw_deliver(smsc, unreadable)
    smsc.inject_mo_raw(number="+27821234567", parts=[b"HELLO"], data_coding=0x00)
    assert _collect(dispatcher, count=1) == ["HELLO"]
    # An id longer than any message's (80) matches none; stored, PostgreSQL refuses the whole batch.
    assert all(len(pid) <= 80 for pid in DeliveryReport.objects.values_list("provider_message_id", flat=True))


def test_a_decimal_id_too_long_to_write_is_matched_as_written():
    from imali.messaging.adapters.smpp import message_id_key

    assert message_id_key("F" * 4000, id_format="dec_hex", receipt=True) == "f" * 4000
    assert message_id_key("1F", id_format="dec_hex", receipt=True) == "31"


def test_a_password_an_smsc_cannot_read_is_named_and_the_bind_retried(funded, smsc, gateway_transports):
    # Before: the bind-reason probe raised UnicodeEncodeError writing the password, which ended the
    # task that keeps the gateway bound: no reason shown, and never another bind.
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=smsc.port, system_id="imali",
                                     password="pw€", bind_mode="trx")
    transport = gateway_transports(gateway, bound=False)["local"]
    deadline = time.monotonic() + 15
    while (not transport.problem or smsc.peer.stats["bind_refused"] < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert transport.problem == "the system id or password has characters an SMSC cannot read (SMPP takes ASCII only)"
    assert smsc.peer.stats["bind_refused"] >= 3 and not transport.is_up
