"""Live status without a reload: the SMS history and SMS detail carry an htmx poller for the
messages still on their way; the fragment views answer with those rows' status swapped in place,
under the page's own right and entity checks, in a fixed number of queries; polling stops once
every message shown is final. htmx itself is served from our static files."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from imali.messaging.models import OutboxMessage
from imali.tenancy.rights import Right
from tests import factories
from tests.messaging.test_reports import sms

pytestmark = pytest.mark.django_db


def _poller(page: str) -> str:
    return re.search(r'<div id="sms-status-poll"[^>]*>', page).group(0)


@pytest.fixture
def history(entity):
    client = factories.make_client(entity=entity)
    now = timezone.now()
    queued = sms(entity, client=client, at=now - dt.timedelta(minutes=3), status="queued")
    sent = sms(entity, client=client, at=now - dt.timedelta(minutes=2), status="submitted")
    done = sms(entity, client=client, at=now - dt.timedelta(minutes=1), status="delivered")
    return client, queued, sent, done


def test_history_page_polls_only_the_messages_on_their_way(client, login_as, entity, history):
    borrower, queued, sent, done = history
    login_as(entity, [Right.VIEW_CLIENTS])
    page = client.get(reverse("web:messaging_client_sms", kwargs={"client_id": borrower.pk})).content.decode()
    poller = _poller(page)
    status_url = reverse("web:messaging_client_sms_status", kwargs={"client_id": borrower.pk})
    assert f'hx-get="{status_url}?id={queued.pk}&amp;id={sent.pk}"' in poller and 'hx-trigger="every 3s"' in poller
    assert f'<span id="sms-status-{done.pk}">Delivered</span>' in page
    # htmx comes from our own static files, not a CDN.
    assert re.search(r'<script src="/static/django_htmx/htmx-2\.min\.js"', page)


def test_history_fragment_swaps_statuses_and_stops_when_all_final(client, login_as, entity, history, django_assert_num_queries):
    borrower, queued, sent, done = history
    login_as(entity, [Right.VIEW_CLIENTS])
    url = reverse("web:messaging_client_sms_status", kwargs={"client_id": borrower.pk})
    OutboxMessage.objects.filter(pk=sent.pk).update(status="delivered", gateway="local", provider_message_id="7")
    # Every signed-in request reads the session, the user, the entity and the user's rights (two);
    # the fragment adds the client (the entity check) and the messages, however many are asked.
    with django_assert_num_queries(7):
        fragment = client.get(f"{url}?id={queued.pk}&id={sent.pk}", HTTP_HX_REQUEST="true").content.decode()
    assert f'<span id="sms-status-{sent.pk}" hx-swap-oob="true">Delivered</span>' in fragment
    assert f'<span id="sms-status-{queued.pk}" hx-swap-oob="true">Queued</span>' in fragment
    assert f'hx-get="{url}?id={queued.pk}"' in _poller(fragment)

    OutboxMessage.objects.filter(pk=queued.pk).update(status="failed", error="Rejected by the network")
    fragment = client.get(f"{url}?id={queued.pk}").content.decode()
    assert f'<span id="sms-status-{queued.pk}" hx-swap-oob="true">Failed</span>' in fragment
    assert "Rejected by the network" in fragment
    poller = _poller(fragment)
    assert "hx-get" not in poller and "hx-trigger" not in poller and 'data-polling="no"' in poller


def test_history_fragment_keeps_the_pages_checks(client, login_as, entity, other_entity, history):
    borrower, queued, _, _ = history
    url = reverse("web:messaging_client_sms_status", kwargs={"client_id": borrower.pk})
    login_as(entity, [Right.SEND_SINGLE_SMS])  # not the page's right
    assert client.get(f"{url}?id={queued.pk}").status_code == 403
    client.logout()
    assert client.get(f"{url}?id={queued.pk}").status_code == 302  # to the sign-in
    login_as(other_entity, [Right.VIEW_CLIENTS])
    assert client.get(f"{url}?id={queued.pk}").status_code == 404
    # Another client's message id under this client's address shows nothing.
    login_as(entity, [Right.VIEW_CLIENTS])
    stranger = sms(entity, client=factories.make_client(entity=entity), at=timezone.now(), status="queued")
    fragment = client.get(f"{url}?id={stranger.pk}&id=999999999").content.decode()
    assert f"sms-status-{stranger.pk}" not in fragment and 'data-polling="no"' in fragment
    # Ids our pages never write are a 400 naming the parameter (tests/web/test_strict_ids.py).
    assert client.get(f"{url}?id={stranger.pk}&id=abc&id=-1&id=99999999999999999999").status_code == 400
    assert client.post(f"{url}?id={queued.pk}").status_code == 405


def test_sms_detail_polls_and_its_fragment_is_scoped_to_the_entity(client, login_as, entity, other_entity,
                                                                   django_assert_num_queries):
    now = timezone.now()
    mine = sms(entity, at=now, status="submitted")
    theirs = sms(other_entity, at=now, status="submitted", number="+264811234567")
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    page = client.get(reverse("web:messaging_outbox")).content.decode()
    url = reverse("web:messaging_outbox_status")
    assert f'hx-get="{url}?id={mine.pk}"' in _poller(page)
    assert f'<span id="sms-status-{mine.pk}">Sent</span>' in page
    with django_assert_num_queries(6):  # session, user, entity, rights (two), the messages
        fragment = client.get(f"{url}?id={mine.pk}&id={theirs.pk}").content.decode()
    assert f"sms-status-{mine.pk}" in fragment and f"sms-status-{theirs.pk}" not in fragment
    OutboxMessage.objects.filter(pk=mine.pk).update(status="delivered")
    fragment = client.get(f"{url}?id={mine.pk}").content.decode()
    assert f'<span id="sms-status-{mine.pk}" hx-swap-oob="true">Delivered</span>' in fragment
    assert 'data-polling="no"' in fragment
    login_as(entity, [Right.VIEW_CLIENTS])
    assert client.get(f"{url}?id={mine.pk}").status_code == 403


def test_the_htmx_script_is_served_locally(client, login_as, entity):
    login_as(entity, [Right.VIEW_CLIENTS])
    response = client.get("/static/django_htmx/htmx-2.min.js")
    assert response.status_code == 200
    assert b"htmx" in b"".join(response.streaming_content) if response.streaming else b"htmx" in response.content
