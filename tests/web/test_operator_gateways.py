"""The operator's SMS gateway screens: who may use them, every field refused by name with nothing
written, the secrets write-only (never on the page, never in the audit log), routes added and
removed, and the live state the dispatcher writes, shown from a real SMPP session against the local
SMSC (127.0.0.1, ephemeral port)."""

import datetime as dt
import json
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.dispatch import Dispatcher, Receiver, transports_from_gateways
from imali.messaging.gateways import HealthReporter
from imali.messaging.models import Gateway, GatewayHealth, Route
from imali.peers.smsc import SmscConfig, run_in_thread
from imali.peers.smsc import pdu as P
from imali.tenancy.rights import Right

pytestmark = pytest.mark.django_db

SMPP = {"name": "vodacom-smsc", "kind": "smpp", "host": "10.20.0.5", "port": "2775", "system_id": "imali",
        "password": "pw-s3cr3t", "source_addr": "Imali", "dest_addr_ton": "1", "dest_addr_npi": "1",
        "bind_mode": "tx_rx", "receipt_id_format": "auto", "window": "50", "rate_per_second": "200", "is_active": "on"}
HTTP = {"name": "clickatell", "kind": "clickatell", "base_url": "https://platform.clickatell.example/",
        "api_key": "key-0ff-the-record", "source_addr": "Imali", "dest_addr_ton": "1", "dest_addr_npi": "1",
        "bind_mode": "tx_rx", "receipt_id_format": "auto", "window": "10", "rate_per_second": "20", "is_active": "on"}


def _audit_text() -> str:
    return json.dumps([[e.before, e.after, e.subject] for e in AuditEntry.objects.all()])


# -- who may use them ---------------------------------------------------------------------------
def test_a_lenders_administrator_is_refused_and_changes_nothing(client, login_as, entity):
    gateway = Gateway.objects.create(name="local", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    login_as(entity, list(Right))  # every right of an entity is still no operator
    for url in (reverse("web:gateway_list"), reverse("web:gateway_states"), reverse("web:gateway_create"),
                reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk})):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("web:gateway_create"), SMPP).status_code == 403
    assert client.post(reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk}),
                       {**SMPP, "host": "10.0.0.9"}).status_code == 403
    assert client.post(reverse("web:gateway_route_add", kwargs={"gateway_id": gateway.pk}),
                       {"entity": entity.pk, "country": "ZA", "rank": "0"}).status_code == 403
    route = Route.objects.create(gateway=gateway, country="ZA")
    assert client.post(reverse("web:gateway_route_remove", kwargs={"gateway_id": gateway.pk, "route_id": route.pk})
                       ).status_code == 403
    assert list(Gateway.objects.values_list("name", "host")) == [("local", "10.0.0.5")]
    assert Route.objects.count() == 1 and not AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).exists()
    assert f'href="{reverse("web:gateway_list")}"' not in client.get(reverse("web:home")).content.decode()


def test_every_post_needs_the_csrf_token(operator, entity):
    from django.test import Client

    gateway = Gateway.objects.create(name="local", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    route = Route.objects.create(gateway=gateway, country="ZA")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    for url, data in ((reverse("web:gateway_create"), SMPP),
                      (reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk}), {**SMPP, "host": "10.0.0.9"}),
                      (reverse("web:gateway_route_add", kwargs={"gateway_id": gateway.pk}),
                       {"entity": entity.pk, "country": "NA", "rank": "0"}),
                      (reverse("web:gateway_route_remove", kwargs={"gateway_id": gateway.pk, "route_id": route.pk}), {})):
        assert browser.post(url, data).status_code == 403, url
    assert list(Gateway.objects.values_list("name", "host")) == [("local", "10.0.0.5")]
    assert list(Route.objects.values_list("pk", flat=True)) == [route.pk]
    assert not AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).exists()


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get(reverse("web:gateway_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("web:login"))


def test_the_menu_leads_the_operator_to_the_gateways(client, operator):
    client.force_login(operator)
    page = client.get(reverse("web:entity_list")).content.decode()
    assert f'href="{reverse("web:gateway_list")}"' in page and "SMS gateways" in page


# -- create and edit ----------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "field"), [
    ({"system_id": ""}, "system_id"),
    ({"password": ""}, "password"),
    ({"port": "0"}, "port"),
    ({"port": "70000"}, "port"),
    ({"port": "27x5"}, "port"),
    ({"host": "169.254.169.254"}, "host"),  # the cloud metadata service: never
    ({"name": "has spaces"}, "name"),
    ({"name": ""}, "name"),
    ({"window": "0"}, "window"),
    ({"rate_per_second": "0"}, "rate_per_second"),
    ({"kind": "carrier-pigeon"}, "kind"),
    ({"bind_mode": "both"}, "bind_mode"),
    ({"dest_addr_ton": "9"}, "dest_addr_ton"),
    ({"system_id": "x" * 17}, "system_id"),
    ({"password": "pw€s3cr3t"[:9]}, "password"),  # SMPP carries ASCII only: no SMSC reads it as typed
    ({"system_id": "imalí"}, "system_id"),
    ({"kind": "clickatell", "base_url": ""}, "base_url"),
    ({"kind": "clickatell", "base_url": "ftp://files.example/"}, "base_url"),
    ({"kind": "clickatell", "base_url": "https://sms.example/"}, "api_key"),
    ({"kind": "africastalking", "base_url": "https://api.example/", "api_key": "k"}, "account"),
])
def test_each_bad_field_is_named_and_nothing_is_written(client, operator, changes, field):
    client.force_login(operator)
    response = client.post(reverse("web:gateway_create"), {**SMPP, **changes})
    assert response.status_code == 400
    assert field in response.context["form"].errors, response.context["form"].errors
    assert 'class="form-errors"' in response.content.decode()
    assert not Gateway.objects.exists() and not AuditEntry.objects.exists()
    assert "pw-s3cr3t" not in response.content.decode()  # not even the typed password comes back


def test_a_duplicate_name_is_named(client, operator):
    Gateway.objects.create(name="vodacom-smsc", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    client.force_login(operator)
    response = client.post(reverse("web:gateway_create"), SMPP)
    assert response.status_code == 400 and "name" in response.context["form"].errors
    assert Gateway.objects.count() == 1


def test_create_then_edit_keeps_the_secrets_write_only(client, operator):
    client.force_login(operator)
    response = client.post(reverse("web:gateway_create"), SMPP)
    gateway = Gateway.objects.get(name="vodacom-smsc")
    assert response.status_code == 302 and response["Location"] == reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk})
    assert (gateway.host, gateway.port, gateway.password, gateway.window, gateway.rate_per_second) == (
        "10.20.0.5", 2775, "pw-s3cr3t", 50, 200)
    edit_url = reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk})
    page = client.get(edit_url).content.decode()
    assert "pw-s3cr3t" not in page and "A password is stored; leave this empty to keep it." in page

    # Left empty: unchanged. The audit entry names the fields that changed.
    response = client.post(edit_url, {**SMPP, "password": "", "window": "80"})
    assert response.status_code == 302
    gateway.refresh_from_db()
    assert (gateway.password, gateway.window) == ("pw-s3cr3t", 80)
    entry = AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).latest("pk")
    assert entry.before == {"window": 50} and entry.after == {"window": 80} and entry.actor == operator

    response = client.post(edit_url, {**SMPP, "window": "80", "password": "n3w-pw"})
    gateway.refresh_from_db()
    assert gateway.password == "n3w-pw"
    entry = AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).latest("pk")
    assert entry.after == {"password": "(changed)"}
    assert "pw-s3cr3t" not in _audit_text() and "n3w-pw" not in _audit_text()
    for url in (reverse("web:gateway_list"), edit_url):
        body = client.get(url).content.decode()
        assert "n3w-pw" not in body and "pw-s3cr3t" not in body

    # An edit refused names its field and writes nothing; the name is not editable at all.
    response = client.post(edit_url, {**SMPP, "name": "renamed", "host": "169.254.169.254"})
    assert response.status_code == 400 and "host" in response.context["form"].errors
    gateway.refresh_from_db()
    assert (gateway.name, gateway.host) == ("vodacom-smsc", "10.20.0.5")


def test_http_aggregator_api_key_is_write_only(client, operator):
    client.force_login(operator)
    response = client.post(reverse("web:gateway_create"), HTTP)
    assert response.status_code == 302, response.context["form"].errors
    gateway = Gateway.objects.get(name="clickatell")
    assert gateway.api_key == "key-0ff-the-record"
    edit_url = reverse("web:gateway_edit", kwargs={"gateway_id": gateway.pk})
    assert "key-0ff-the-record" not in client.get(edit_url).content.decode()
    assert client.post(edit_url, {**HTTP, "api_key": "", "is_active": ""}).status_code == 302
    gateway.refresh_from_db()
    assert gateway.api_key == "key-0ff-the-record" and not gateway.is_active  # deactivated, not deleted
    assert "key-0ff-the-record" not in _audit_text()
    page = client.get(reverse("web:gateway_list")).content.decode()
    assert "https://platform.clickatell.example/" in page and "Clickatell One API (HTTP)" in page


# -- routes ---------------------------------------------------------------------------------------
def test_a_route_is_added_and_removed(client, operator, entity):
    gateway = Gateway.objects.create(name="local", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    client.force_login(operator)
    add = reverse("web:gateway_route_add", kwargs={"gateway_id": gateway.pk})
    assert client.post(add, {"entity": entity.pk, "country": "NA", "rank": "1"}).status_code == 302
    assert client.post(add, {"entity": "", "country": "", "rank": "5"}).status_code == 302
    page = client.get(reverse("web:gateway_list")).content.decode()
    assert f"{entity.name} to Namibia, rank 1" in page and "every lender to every country, rank 5" in page
    route = Route.objects.get(entity=entity)
    assert (route.country, route.rank) == ("NA", 1)
    entry = AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).order_by("pk").first()
    assert entry.after == {"route_added": f"{entity.name} to Namibia, rank 1"} and entry.entity == entity

    for bad, field in (({"country": "XX", "rank": "0"}, "country"), ({"country": "ZA", "rank": "-1"}, "rank"),
                       ({"country": "NA", "rank": "2", "entity": entity.pk}, "country"),  # that route exists
                       ({"country": "ZA", "rank": "0", "entity": "999999"}, "entity")):
        response = client.post(add, bad)
        assert response.status_code == 400 and field in response.context["route_form"].errors, (bad, response.context["route_form"].errors)
    assert Route.objects.count() == 2

    remove = reverse("web:gateway_route_remove", kwargs={"gateway_id": gateway.pk, "route_id": route.pk})
    assert client.get(remove).status_code == 405
    assert client.post(remove).status_code == 302
    assert list(Route.objects.values_list("entity", "country", "rank")) == [(None, "", 5)]
    assert AuditEntry.objects.filter(action=AuditAction.GATEWAY_CHANGED).latest("pk").before == {
        "route_removed": f"{entity.name} to Namibia, rank 1"}
    other = Gateway.objects.create(name="other", host="10.0.0.6", port=2775, system_id="imali", password="pw")
    kept = Route.objects.get()
    # A route is removed only through its own gateway's address.
    assert client.post(reverse("web:gateway_route_remove", kwargs={"gateway_id": other.pk, "route_id": kept.pk})
                       ).status_code == 404


# -- live state -----------------------------------------------------------------------------------
def _state_cell(client, gateway) -> str:
    page = client.get(reverse("web:gateway_states")).content.decode()
    row = page.split(f'id="gateway-{gateway.pk}"', 1)[1].split("</tr>", 1)[0]
    return row.split('class="gateway-state"', 1)[1]


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig())
    yield peer
    peer.stop()


def test_the_screen_shows_connected_then_down_with_the_smscs_reason(client, operator, smsc):
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=smsc.port, system_id="imali",
                                     password="secret", bind_mode="trx")
    client.force_login(operator)
    assert "Not seen yet" in _state_cell(client, gateway)
    page = client.get(reverse("web:gateway_list")).content.decode()
    assert f'hx-get="{reverse("web:gateway_states")}"' in page and 'hx-trigger="every 5s"' in page
    transport = transports_from_gateways([gateway])["local"]
    try:
        assert transport.wait_bound(5)
        dispatcher = Dispatcher({"local": transport})
        dispatcher.apply_events()  # what every pass of the dispatcher's loop does
        cell = _state_cell(client, gateway)
        assert "Connected" in cell and "Down" not in cell
        seen = GatewayHealth.objects.get(gateway=gateway).seen_at
        assert timezone.localtime(seen).strftime("%Y-%m-%d %H:%M") + " SAST" in cell  # the operator's zone

        smsc.configure(bind_status=P.ESME_RINVPASWD)  # the SMSC's side changed the password...
        smsc.outage(0.5)  # ...and dropped the session: each bind from now on is refused
        deadline = time.monotonic() + 15
        while "ESME_RINVPASWD" not in transport.problem and time.monotonic() < deadline:
            time.sleep(0.05)
        dispatcher.apply_events()
        cell = _state_cell(client, gateway)
        assert "Down: the SMSC refused the password (ESME_RINVPASWD)" in cell and "Connected" not in cell
    finally:
        transport.close()


def test_the_receiver_reports_its_own_session(smsc):
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=smsc.port, system_id="imali",
                                     password="secret", bind_mode="tx_rx")
    transports = transports_from_gateways([gateway], role="receive")
    try:
        assert transports["local"].wait_bound(5)
        Receiver(transports).step()
        assert list(GatewayHealth.objects.values_list("role", "connected")) == [("receive", True)]
    finally:
        for t in transports.values():
            t.close()


class _Still:
    """A transport whose state does not change (the reporter reads only what any transport has)."""

    role = "both"
    problem = ""
    bind_types = ["trx"]

    def wait_bound(self, timeout):
        return True


def test_an_unchanged_state_is_written_once_a_heartbeat_not_every_pass():
    gateway = Gateway.objects.create(name="local", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    reporter = HealthReporter({"local": _Still()}, heartbeat=3600)
    reporter.report()
    first = GatewayHealth.objects.get(gateway=gateway).seen_at
    for _ in range(5):
        reporter.report()
    assert GatewayHealth.objects.get(gateway=gateway).seen_at == first
    reporter.heartbeat = 0
    reporter.report()
    assert GatewayHealth.objects.get(gateway=gateway).seen_at > first


def test_a_state_no_process_reports_any_more_is_not_shown_as_current(client, operator):
    gateway = Gateway.objects.create(name="local", host="10.0.0.5", port=2775, system_id="imali", password="pw")
    long_ago = timezone.now() - dt.timedelta(hours=2)
    GatewayHealth.objects.create(gateway=gateway, role="both", connected=True, changed_at=long_ago, seen_at=long_ago)
    client.force_login(operator)
    cell = _state_cell(client, gateway)
    assert "Not seen lately" in cell and "Connected" not in cell


def test_an_address_the_server_may_not_connect_to_shows_as_down(client, operator):
    # Saved before the rules refused it (the screen would not save it now): the transport never
    # connects, and the screen says why rather than "Not seen yet" for ever.
    gateway = Gateway.objects.create(name="metadata", host="169.254.169.254", port=2775, system_id="imali",
                                     password="pw", bind_mode="trx")
    transport = transports_from_gateways([gateway])["metadata"]
    try:
        deadline = time.monotonic() + 10
        while not transport.problem and time.monotonic() < deadline:
            time.sleep(0.05)
        Dispatcher({"metadata": transport}).apply_events()
    finally:
        transport.close()
    client.force_login(operator)
    cell = _state_cell(client, gateway)
    assert "Down: the server may not connect to 169.254.169.254:2775" in cell


def test_the_gateway_list_costs_the_same_queries_whatever_the_number_of_gateways(
        client, operator, entity, django_assert_num_queries):
    # Pinned: a route's lender or a gateway's state read per row would grow with the list.
    client.force_login(operator)
    now = timezone.now()

    def add(n):
        for i in range(n):
            g = Gateway.objects.create(name=f"smsc-{Gateway.objects.count()}", host="10.0.0.5", port=2775,
                                       system_id="imali", password="pw")
            Route.objects.create(gateway=g, entity=entity, country="ZA", rank=i)
            Route.objects.create(gateway=g, country="", rank=i + 1)
            GatewayHealth.objects.create(gateway=g, role="send", connected=True, changed_at=now, seen_at=now)
            GatewayHealth.objects.create(gateway=g, role="receive", connected=False, problem="refused",
                                         changed_at=now, seen_at=now)

    add(1)
    client.get(reverse("web:gateway_states"))  # the session and the user, cached as on any later poll
    with django_assert_num_queries(6) as one:
        client.get(reverse("web:gateway_states"))
    add(5)
    with django_assert_num_queries(len(one.captured_queries)):
        page = client.get(reverse("web:gateway_states")).content.decode()
    assert page.count("Down: refused") == 6
