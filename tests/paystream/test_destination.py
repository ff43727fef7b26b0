"""The payment stream's base URL may not point the web app at any host (SSRF): https only (plain
http only to a loopback peer where allowed), no credentials in the URL, no private, link-local or
metadata address unless the operator allows the host (core/destination.py). Checked on save
(screen and API, naming the field, nothing written) and before every call."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from imali.core.destination import base_url_problem, resolved_problem
from imali.core.models import AuditEntry
from imali.paystream import services
from imali.paystream.models import StreamRequest, StreamSettings
from tests import factories

REFUSED = [
    "http://stream.example.co.za/api",            # plain http to the internet
    "ftp://stream.example.co.za/",
    "https://user:pw@stream.example.co.za/",      # credentials in the URL
    "https://stream.example.co.za@169.254.169.254/",
    "https://169.254.169.254/latest/meta-data/",  # the cloud metadata service
    "https://[fe80::1]/",
    "https://10.0.0.5/", "https://172.16.3.4/", "https://192.168.1.1/", "https://100.64.0.1/",
    "https://0.0.0.0/", "https://[::]/", "https://[fd00::1]/", "https://[::ffff:10.0.0.1]/",
    "https://2130706433/", "https://0x7f.1/", "https://127.1/", "https://017700000001/",
    "https://metadata/", "https://metadata.google.internal/", "https://db.local/", "https://redis.localdomain/",
    "https://stream.example.co.za/?x=1", "stream.example.co.za", "https:///v1",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_or_unsafe_addresses_are_refused(url):
    assert base_url_problem(url, allow_loopback=True) is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8041", "https://127.0.0.1:8041/", "http://localhost:8041",
                                 "http://[::1]:8041", "http://[::ffff:127.0.0.1]:8041"])
def test_loopback_only_where_allowed(url):
    assert base_url_problem(url, allow_loopback=True) is None
    assert base_url_problem(url, allow_loopback=False) is not None


@pytest.mark.parametrize("url", ["https://stream.example.co.za/api", "https://196.25.1.10:8443/v1",
                                 "https://STREAM.Example.co.za."])
def test_public_https_addresses_are_accepted(url):
    assert base_url_problem(url, allow_loopback=False) is None


def test_the_operator_may_allow_a_private_host_by_name_address_or_network():
    assert base_url_problem("https://10.20.0.5/", allow_loopback=False, allowed_hosts=["10.20.0.0/16"]) is None
    assert base_url_problem("https://bank.vpn.internal/", allow_loopback=False, allowed_hosts=["bank.vpn.internal"]) is None
    assert base_url_problem("https://10.21.0.5/", allow_loopback=False, allowed_hosts=["10.20.0.0/16"]) is not None
    # Still https: the allowance is about where, not how.
    assert base_url_problem("http://10.20.0.5/", allow_loopback=False, allowed_hosts=["10.20.0.5"]) is not None


def test_a_public_name_that_resolves_to_a_private_address_is_refused():
    def resolve(host, port, **kwargs):  # the system resolver's answer for a rebinding name
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    problem = resolved_problem("https://stream.example.co.za/", allow_loopback=False, resolve=resolve)
    assert problem and "10.1.2.3" in problem
    assert resolved_problem("https://stream.example.co.za/", allow_loopback=False, resolve=resolve,
                            allowed_hosts=["10.1.0.0/16"]) is None


@pytest.fixture
def admin(ps_entity):
    from imali.tenancy.rights import Right

    return factories.make_user(entity=ps_entity, rights=[Right.PAYMENT_STREAM_WEB_SERVICES])


def _saved(entity):
    return StreamSettings.objects.get(entity=entity).base_url


@pytest.mark.parametrize("url", ["https://169.254.169.254/", "http://stream.example.co.za/", "https://u:p@stream.example.co.za/",
                                 "https://10.0.0.5/"])
def test_the_screen_and_the_api_refuse_naming_the_field_and_write_nothing(client, admin, ps_entity, url):
    before, audits = _saved(ps_entity), AuditEntry.objects.filter(action="paystream.settings_changed").count()
    client.force_login(admin)
    page = client.post(reverse("web:paystream_settings"), {"base_url": url, "username": "lender", "password": "",
                                                            "branch_code": "HO", "timeout_seconds": "5"})
    assert page.status_code == 400 and "base_url" in page.context["form"].errors
    put = client.put("/api/payment-stream/settings/", {"base_url": url, "username": "x"}, content_type="application/json")
    assert put.status_code == 400 and set(put.json()) == {"base_url"}
    assert _saved(ps_entity) == before
    assert AuditEntry.objects.filter(action="paystream.settings_changed").count() == audits


def test_a_change_of_address_is_audited_with_before_and_after(admin, ps_entity):
    before = _saved(ps_entity)
    services.stream_settings_save(entity=ps_entity, actor=admin, base_url="https://stream.example.co.za/api", username="lender")
    entry = AuditEntry.objects.filter(action="paystream.settings_changed").order_by("-id").first()
    assert entry.actor_id == admin.pk
    assert entry.before["base_url"] == before and entry.after["base_url"] == "https://stream.example.co.za/api"


def test_loopback_is_refused_where_not_allowed(admin, ps_entity, peer):
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        with pytest.raises(ValidationError) as refused:
            services.stream_settings_save(entity=ps_entity, actor=admin, base_url=peer.base_url, username="lender")
        assert "base_url" in refused.value.message_dict
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False, OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"]):
        # The operator's allowance names the host, but plain http still only goes to a loopback
        # peer where loopback is allowed.
        with pytest.raises(ValidationError):
            services.stream_settings_save(entity=ps_entity, actor=admin, base_url=peer.base_url, username="lender")


def test_a_row_saved_before_the_rule_is_not_connected_to(admin, ps_entity, borrower, peer):
    """Checked before each call, too: the peer receives nothing, and the request log says why."""
    StreamSettings.objects.filter(entity=ps_entity).update(base_url="http://169.254.169.254")
    with pytest.raises(ValidationError) as refused:
        services.client_register(entity=ps_entity, actor=admin, client=borrower)
    assert refused.value.message_dict.keys() == {"base_url"}
    assert peer.received == []
    assert StreamRequest.objects.filter(entity=ps_entity, error_code="destination_refused").exists()
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        StreamSettings.objects.filter(entity=ps_entity).update(base_url=peer.base_url)
        with pytest.raises(ValidationError):
            services.client_register(entity=ps_entity, actor=admin, client=borrower)
    assert peer.received == []
    services.client_register(entity=ps_entity, actor=admin, client=borrower)  # loopback allowed again
    assert peer.received
