"""The SMS gateways' addresses (an SMSC's host, an HTTP aggregator's base URL) go through the
outbound-destination rule with the operator's trust (core/destination.py): a private network is
allowed, the metadata service, odd IPv4 spellings, credentials in URLs and loopback outside
development are not, unless allow-listed. Refused on save (Gateway.clean, the dispatcher's own
default gateway) and before each connection: nothing reaches the peer, the refusal is audited, the
route fails over."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import override_settings

from imali.core.models import AuditEntry
from imali.messaging.adapters.base import Outcome, Submission
from imali.messaging.dispatch import transports_from_gateways
from imali.messaging.models import Gateway
from imali.messaging.replies import replies_pull
from imali.peers.smsc import SmscConfig, run_in_thread
from tests.channels.conftest import API_KEY

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED_HOSTS = ["169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "0x7f.1", "2130706433", "0.0.0.0",
                 "smsc.example.com:2775", "user@smsc.example.com"]
REFUSED_URLS = ["https://169.254.169.254/", "http://api.africastalking.com/", "https://user:key@api.africastalking.com/",
                "https://100.100.100.200/", "https://127.1/"]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_an_smpp_host_is_refused_naming_the_field(host):
    with pytest.raises(ValidationError) as refused:
        Gateway(name="smsc", host=host, port=2775, system_id="imali").full_clean()
    assert "host" in refused.value.message_dict


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_an_aggregator_url_is_refused_naming_the_field(url):
    with pytest.raises(ValidationError) as refused:
        Gateway(name="at", kind="africastalking", base_url=url, api_key="k").full_clean()
    assert "base_url" in refused.value.message_dict


def test_the_operator_may_use_a_private_network_and_loopback_only_where_allowed():
    Gateway(name="smsc", host="10.20.0.5", port=2775, system_id="imali").full_clean()
    Gateway(name="smsc", host="smsc.vpn.internal", port=2775, system_id="imali").full_clean()
    Gateway(name="at", kind="africastalking", base_url="https://10.20.0.6/", api_key="k").full_clean()
    Gateway(name="smsc", host="127.0.0.1", port=2775, system_id="imali").full_clean()
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(ValidationError):
                Gateway(name="smsc", host=host, port=2775, system_id="imali").full_clean()
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False, OUTBOUND_ALLOWED_HOSTS=["169.254.169.254", "127.0.0.1"]):
        Gateway(name="smsc", host="169.254.169.254", port=2775, system_id="imali").full_clean()
        Gateway(name="smsc", host="127.0.0.1", port=2775, system_id="imali").full_clean()
    with pytest.raises(ValidationError) as refused:
        Gateway(name="smsc", host="10.20.0.5", port=0, system_id="imali").full_clean()
    assert "port" in refused.value.message_dict


def test_the_dispatchers_default_gateway_from_the_environment_is_checked(monkeypatch):
    monkeypatch.setenv("IMALI_SMPP_HOST", "169.254.169.254")
    with pytest.raises(CommandError, match="IMALI_SMPP_HOST"):
        call_command("messaging_dispatch", "--until-idle", "--receiver", "none", "--max-seconds", "1")
    assert not Gateway.objects.exists()


def test_an_smsc_on_a_refused_host_is_never_connected_to():
    peer = run_in_thread(SmscConfig(http_port=0))
    try:
        gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=peer.port, system_id="imali",
                                         password="secret", bind_mode="trx")
        with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
            transports = transports_from_gateways([gateway])
            try:
                assert transports["local"].wait_bound(1.0) is False
                assert peer.peer.stats["binds"] == 0
            finally:
                transports["local"].close()
        entry = AuditEntry.objects.get(action="messaging.gateway_destination_refused")
        assert entry.subject == "local" and entry.after["field"] == "host" and entry.actor is None
        # Loopback allowed again (development): the same gateway binds.
        transports = transports_from_gateways([gateway])
        try:
            assert transports["local"].wait_bound(5.0) is True
        finally:
            transports["local"].close()
    finally:
        peer.stop()


def test_an_aggregator_on_a_refused_address_receives_nothing_and_the_messages_are_retried(at_peer):
    gateway = Gateway.objects.create(name="at", kind="africastalking", base_url=at_peer.base_url, api_key=API_KEY,
                                     account="lender", rate_per_second=1000)
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        transport = transports_from_gateways([gateway])["at"]
        try:
            results = transport.submit_batch([Submission(1, "+27821234567", "Your loan is approved")])
        finally:
            transport.close()
    assert [r.outcome for r in results] == [Outcome.RETRY] and "destination refused" in results[0].error
    assert at_peer.stats["requests"] == 0
    assert AuditEntry.objects.filter(action="messaging.gateway_destination_refused", subject="at").exists()


def test_the_replies_pull_skips_a_refused_gateway_with_the_reason(at_peer):
    Gateway.objects.create(name="at", kind="africastalking", base_url=at_peer.base_url, api_key=API_KEY,
                           account="lender", rate_per_second=1000)
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        result = replies_pull()
    assert result.gateways == [] and "destination refused" in result.errors[0]
    assert at_peer.stats["requests"] == 0
    assert replies_pull().gateways == ["at"]


def test_a_dispatcher_restarted_in_a_loop_audits_a_refused_gateway_once_an_hour(at_peer):
    gateway = Gateway.objects.create(name="at", kind="africastalking", base_url=at_peer.base_url, api_key=API_KEY,
                                     account="lender", rate_per_second=1000)
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        for _ in range(4):
            for transport in transports_from_gateways([gateway]).values():
                transport.close()
            replies_pull()
    assert AuditEntry.objects.filter(action="messaging.gateway_destination_refused", subject="at").count() == 1
