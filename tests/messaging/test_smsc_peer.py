"""The local SMSC answers SMPP 3.4 as a client on the wire sees it (raw PDUs over loopback)."""

import socket

import pytest

from imali.peers.smsc import SmscConfig, run_in_thread
from imali.peers.smsc import pdu as P


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig(throttle_share=0.0))
    yield peer
    peer.stop()


def _read(sock):
    header = b""
    while len(header) < 16:
        header += sock.recv(16 - len(header))
    length, command_id, status, seq = P.HEADER.unpack(header)
    body = b""
    while len(body) < length - 16:
        body += sock.recv(length - 16 - len(body))
    return command_id, status, seq, body


def _bind(sock, password="secret"):
    sock.sendall(P.pdu(P.BIND_TRANSCEIVER, 0, 1, P.cstr("imali") + P.cstr(password) + P.cstr("") + bytes([0x34, 0, 0]) + P.cstr("")))
    return _read(sock)


def test_bind_enquire_link_submit_receipt_unbind(smsc):
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        assert _bind(sock)[:3] == (P.BIND_TRANSCEIVER | P.RESP, P.ESME_ROK, 1)
        sock.sendall(P.pdu(P.ENQUIRE_LINK, 0, 2))
        assert _read(sock)[:3] == (P.ENQUIRE_LINK | P.RESP, P.ESME_ROK, 2)
        sm = P.ShortMessage(source_addr="Imali", destination_addr="27821234567", registered_delivery=1, short_message=b"hi")
        sock.sendall(P.pdu(P.SUBMIT_SM, 0, 3, sm.encode()))
        command_id, status, seq, body = _read(sock)
        message_id = body.rstrip(b"\0").decode()
        assert (command_id, status, seq) == (P.SUBMIT_SM | P.RESP, P.ESME_ROK, 3) and message_id
        command_id, status, seq, body = _read(sock)
        receipt = P.ShortMessage.decode(body)
        assert command_id == P.DELIVER_SM and receipt.esm_class == 0x04
        assert receipt.tlvs[P.TLV_RECEIPTED_MESSAGE_ID].rstrip(b"\0").decode() == message_id
        assert f"id:{message_id} " in receipt.short_message.decode() and "stat:DELIVRD" in receipt.short_message.decode()
        sock.sendall(P.pdu(P.DELIVER_SM | P.RESP, 0, seq, P.cstr("")))
        sock.sendall(P.pdu(P.UNBIND, 0, 4))
        assert _read(sock)[:3] == (P.UNBIND | P.RESP, P.ESME_ROK, 4)
    assert smsc.call(lambda: smsc.peer.phones["+27821234567"][0].text) == "hi"


def test_wrong_password_and_unbound_submit_are_refused(smsc):
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        sm = P.ShortMessage(source_addr="Imali", destination_addr="27821234567", short_message=b"hi")
        sock.sendall(P.pdu(P.SUBMIT_SM, 0, 1, sm.encode()))
        assert _read(sock)[1] == P.ESME_RINVBNDSTS
        assert _bind(sock, password="wrong")[1] == P.ESME_RINVPASWD


def test_throttling_answer(smsc):
    smsc.configure(throttle_per_second=1)
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        _bind(sock)
        sm = P.ShortMessage(source_addr="Imali", destination_addr="27821234567", short_message=b"hi")
        statuses = []
        for seq in (2, 3, 4):
            sock.sendall(P.pdu(P.SUBMIT_SM, 0, seq, sm.encode()))
            statuses.append(_read(sock)[1])
        assert statuses[0] == P.ESME_ROK and P.ESME_RTHROTTLED in statuses[1:]


@pytest.mark.parametrize(("command", "can_submit"), [(P.BIND_TRANSMITTER, True), (P.BIND_RECEIVER, False)])
def test_transmitter_and_receiver_binds(smsc, command, can_submit):
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        sock.sendall(P.pdu(command, 0, 1, P.cstr("imali") + P.cstr("secret") + P.cstr("") + bytes([0x34, 0, 0]) + P.cstr("")))
        assert _read(sock)[:3] == (command | P.RESP, P.ESME_ROK, 1)
        sm = P.ShortMessage(source_addr="Imali", destination_addr="27821234567", short_message=b"hi")
        sock.sendall(P.pdu(P.SUBMIT_SM, 0, 2, sm.encode()))
        assert _read(sock)[1] == (P.ESME_ROK if can_submit else P.ESME_RINVBNDSTS)


def test_policer_spaces_submits_and_keeps_the_long_run_rate(smsc):
    # 20/s with 0.1 s of jitter tolerance: of a burst of 10, the first three pass (on time, and up
    # to 0.1 s early), the rest are refused.
    smsc.configure(throttle_per_second=20, throttle_tolerance=0.1)
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        _bind(sock)
        sm = P.ShortMessage(source_addr="Imali", destination_addr="27821234567", short_message=b"hi")
        for seq in range(2, 12):
            sock.sendall(P.pdu(P.SUBMIT_SM, 0, seq, sm.encode()))
        statuses = [_read(sock)[1] for _ in range(10)]
    assert statuses.count(P.ESME_ROK) == 3 and statuses.count(P.ESME_RTHROTTLED) == 7


def test_refused_bind_has_no_body_and_the_smscs_unbind_ends_on_the_answer(smsc):
    smsc.configure(bind_status=P.ESME_RBINDFAIL)
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        command_id, status, _, body = _bind(sock)
        assert (command_id, status, body) == (P.BIND_TRANSCEIVER | P.RESP, P.ESME_RBINDFAIL, b"")
    smsc.configure(bind_status=0)
    with socket.create_connection(("127.0.0.1", smsc.port), timeout=5) as sock:
        assert _bind(sock)[1] == P.ESME_ROK
        smsc.send_to_sessions(P.UNBIND)
        command_id, _, seq, _ = _read(sock)
        assert command_id == P.UNBIND
        sock.sendall(P.pdu(P.UNBIND | P.RESP, 0, seq))
        assert sock.recv(16) == b""  # the SMSC closed the session
