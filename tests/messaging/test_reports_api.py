"""The SMS Detail report over the API: the screen's filters, paging, CSV export, rights, isolation."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.api.services import api_token_issue
from imali.core.models import AuditAction, AuditEntry
from imali.messaging import reports
from imali.tenancy.rights import Right
from tests import factories
from tests.messaging.test_reports import book, local, sms  # noqa: F401 - the shared fixture

URL = "api:messaging-report-sms-detail"


def ids(admin_client, query: str = "") -> set[int]:
    response = admin_client.get(reverse(URL) + query)
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.parametrize(("query", "expected"), [
    ("", {"thabo_crm", "thabo_arrears", "lindiwe_single", "manager_mis"}),
    ("?type=arrears", {"thabo_arrears"}),
    ("?status=queued", {"manager_mis"}),
    ("?date_from=2026-11-10&date_to=2026-11-10", {"thabo_arrears", "lindiwe_single"}),
    ("?branch={east}", {"lindiwe_single", "manager_mis"}),
    ("?user={clerk}", {"lindiwe_single"}),
    ("?user=system", {"thabo_arrears", "manager_mis"}),
    ("?number=2784", {"manager_mis"}),
])
def test_api_filters_like_the_screen(admin_client, book, query, expected):  # noqa: F811
    query = query.format(east=book["east"].pk, clerk=book["clerk"].pk)
    assert ids(admin_client, query) == {book["msgs"][k].pk for k in expected}


def test_api_rows_and_paging(admin_client, book, admin_user):  # noqa: F811
    body = admin_client.get(reverse(URL) + "?limit=2").json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    newest = body["results"][0]
    assert newest["date"] == "2026-11-11" and newest["time"] == "00:30:00" and newest["user"] == "System"
    assert newest["branch"] == "East London" and newest["type_label"] == "MIS report" and newest["status"] == "queued"
    crm = admin_client.get(reverse(URL) + "?type=crm").json()["results"][0]
    assert crm["user"] == str(admin_user) and crm["user_id"] == admin_user.pk and crm["client"] == "Thabo Mokoena"


def test_api_another_entitys_branch_or_user_gives_nothing(admin_client, book):  # noqa: F811
    assert ids(admin_client, f"?branch={book['other_branch'].pk}") == set()
    assert ids(admin_client, f"?user={book['other_user'].pk}") == set()
    assert "THEIRS-SECRET" not in admin_client.get(reverse(URL)).content.decode()


def test_api_refuses_bad_filters(admin_client, book):  # noqa: F811
    for query in ("?status=lost", "?user=nobody", "?date_from=2026-11-10&date_to=2026-11-01", "?branch=x"):
        assert admin_client.get(reverse(URL) + query).status_code == 400, query


def test_api_csv_export_is_streamed_and_audited(admin_client, book, admin_user):  # noqa: F811
    response = admin_client.get(reverse(URL) + "?user=system&export=csv")
    assert response.status_code == 200 and response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == reports.SMS_DETAIL_HEADER and len(rows) == 3
    entry = AuditEntry.objects.get(action=AuditAction.REPORT_EXPORTED)
    assert entry.actor == admin_user and entry.after["rows"] == 2 and entry.after["filters"] == {"user": "system"}


def test_api_needs_the_report_right(client, entity, book):  # noqa: F811
    client.force_login(factories.make_user(entity=entity, rights=[Right.VIEW_LOGS, Right.SEND_SINGLE_SMS]))
    assert client.get(reverse(URL)).status_code == 403
    assert client.get(reverse(URL) + "?export=csv").status_code == 403
    assert not AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED).exists()


def test_api_other_entity_sees_only_its_own(client, other_entity, book):  # noqa: F811
    client.force_login(factories.make_admin(entity=other_entity))
    rows = client.get(reverse(URL)).json()["results"]
    assert [r["message"] for r in rows] == ["THEIRS-SECRET"]


def test_api_token_caller(client, entity, book):  # noqa: F811
    """The report answers a token caller too (the entity comes from the token's user)."""
    user = factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=user).key}")
    assert api.get(reverse(URL)).json()["count"] == 4
