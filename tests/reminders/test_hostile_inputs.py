"""A hostile tester's pass over the automatic and MIS SMS setups and the MIS Detail report, through
the screens and the API: out-of-range, malformed and other scripts' values, foreign users in the
recipient lists, missing rights. Each is a 4xx or the form's error naming the field, never a 500,
and writes nothing; reading a setup writes nothing either."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditEntry
from imali.reminders.models import AutomaticSetup, MisRecipient, MisSetup
from tests import factories

pytestmark = pytest.mark.django_db


def counts():
    return (AutomaticSetup.objects.count(), MisSetup.objects.count(), MisRecipient.objects.count(),
            AuditEntry.objects.count())


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


@pytest.mark.parametrize(("query", "field"), [
    ({"date_from": "9999-12-31"}, "date_from"), ({"date_to": "9999-12-31"}, "date_to"),
    ({"date_from": "0001-01-01"}, "date_from"), ({"date_to": "0001-01-01"}, "date_to"),
    ({"date_from": "1899-12-31"}, "date_from"), ({"date_to": "2101-01-01"}, "date_to"),
    ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"), ({"user": "١٢"}, "user"), ({"user": "1e10"}, "user"),
    ({"user": "12.0"}, "user"), ({"user": "0"}, "user"), ({"status": "zzz"}, "status"), ({"stream": "\x00"}, "stream"),
    ({"stream": ""}, "stream"), ({"date_from": "x" * 100_000}, "date_from"),
])
def test_mis_detail_api_refuses_bad_filters_naming_them(entity, admin_user, query, field):
    """9999-12-31 and 0001-01-01 were a 500: the day's local midnight (or the next day's) is
    beyond what a datetime holds."""
    response = api_for(admin_user).get("/api/reminders/reports/mis-detail/", query)
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(("query", "field"), [
    ({"start": "9999-12-31"}, "start"), ({"end": "9999-12-31"}, "end"), ({"start": "0001-01-01"}, "start"),
    ({"end": "0001-01-01"}, "end"), ({"end": "9999-12-31", "export": "csv"}, "end"), ({"user": "١٢"}, "user"),
    ({"start": "2026-02-01", "end": "2026-01-01"}, "end"), ({"status": "zzz"}, "status"),
])
def test_mis_detail_screen_refuses_bad_filters_naming_them(entity, admin_user, client, query, field):
    client.force_login(admin_user)
    before = counts()
    response = client.get(reverse("web:reminders_mis_detail"), query)
    assert response.status_code == 200 and field in response.context["form"].errors
    assert counts() == before  # and no export was audited


def test_mis_detail_with_another_entitys_user(entity, other_entity, admin_user, client):
    stranger = factories.make_user(entity=other_entity)
    response = api_for(admin_user).get("/api/reminders/reports/mis-detail/", {"user": stranger.pk})
    assert response.status_code == 200 and response.json()["results"] == []
    client.force_login(admin_user)
    response = client.get(reverse("web:reminders_mis_detail"), {"user": stranger.pk})
    assert response.status_code == 200 and "user" in response.context["form"].errors


@pytest.mark.parametrize(("body", "field"), [
    ({"run_at": "24:00"}, "run_at"), ({"run_at": "7:5"}, "run_at"), ({"run_at": "07:05:00"}, "run_at"),
    ({"run_at": "０７:００"}, "run_at"), ({"run_at": None}, "run_at"), ({"run_at": ""}, "run_at"),
    ({"due_days_before": "١٢"}, "due_days_before"), ({"due_days_before": "12.0"}, "due_days_before"),
    ({"due_days_before": 0}, "due_days_before"), ({"due_days_before": -3}, "due_days_before"),
    ({"due_days_before": 1e10}, "due_days_before"), ({"due_days_before": "1e10"}, "due_days_before"),
    ({"birthday_enabled": "maybe"}, "birthday_enabled"), ({"due_enabled": None}, "due_enabled"),
])
def test_automatic_setup_api_refuses_bad_values(entity, admin_user, body, field):
    before = counts()
    response = api_for(admin_user).put("/api/reminders/automatic/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert counts() == before


@pytest.mark.parametrize("body", [
    {"arrears_minimum": "1e10"}, {"arrears_minimum": "-1"}, {"arrears_minimum": "0"}, {"arrears_minimum": "١٢"},
    {"arrears_minimum": None}, {"arrears_minimum": "1" * 1000}, {"arrears_minimum": "12.505"},
    {"arrears_repeat_days": 91}, {"arrears_repeat_days": "１"},
])
def test_arrears_setup_api_refuses_bad_values(entity, admin_user, body):
    before = counts()
    response = api_for(admin_user).put("/api/reminders/automatic/arrears/", body, format="json")
    assert response.status_code == 400 and set(response.json()) == set(body)
    assert counts() == before


def test_mis_setup_api_refuses_a_mixed_list_of_own_and_foreign_users_whole(entity, other_entity, admin_user):
    own = factories.make_user(entity=entity)
    stranger = factories.make_user(entity=other_entity)
    api = api_for(admin_user)
    before = counts()
    for body in ({"management_recipients": [own.pk, stranger.pk]}, {"management_recipients": list(range(1, 10_001))},
                 {"management_recipients": ["١٢"]}, {"management_recipients": [0]}, {"management_recipients": [2**64]},
                 {"management_recipients": "1,2"}, {"management_recipients": [own.pk], "run_at": "25:00"},
                 {"branch_recipients": [own.pk], "cash_flow_recipients": [stranger.pk]}):
        response = api.put("/api/reminders/mis/", body, format="json")
        assert response.status_code == 400, body
    assert counts() == before
    response = api.put("/api/reminders/mis/", {"management_recipients": [own.pk, own.pk]}, format="json")
    assert response.status_code == 200 and response.json()["management_recipients"] == [own.pk]


def test_screens_refuse_bad_values_and_foreign_users_writing_nothing(entity, other_entity, admin_user, client):
    own = factories.make_user(entity=entity)
    stranger = factories.make_user(entity=other_entity)
    client.force_login(admin_user)
    before = counts()
    response = client.post(reverse("web:reminders_mis"), {"run_at": "07:00", "management_enabled": "on",
                                                          "management_recipients": [own.pk, stranger.pk]})
    assert response.status_code == 400 and "management_recipients" in response.context["form"].errors
    for data, field in (({"run_at": "25:00"}, "run_at"), ({"run_at": "\x00"}, "run_at"), ({"run_at": "x" * 1_000_000}, "run_at"),
                        ({}, "run_at"), ({"run_at": "07:00", "due_days_before": "١٢"}, "due_days_before")):
        response = client.post(reverse("web:reminders_automatic"), {"due_days_before": "3", **data})
        assert response.status_code == 400 and field in response.context["form"].errors
    for days in ("١٢", "12.0", "1e10", "0", "-1", "91", ""):
        response = client.post(reverse("web:reminders_arrears"), {"arrears_minimum": "10", "arrears_repeat_days": days})
        assert response.status_code == 400 and "arrears_repeat_days" in response.context["form"].errors
    assert counts() == before


def test_reading_a_setup_writes_nothing(entity, admin_user, client):
    """Opening the setup screens or GETting the API made the default setup rows, unaudited, and a
    refused POST left them behind."""
    client.force_login(admin_user)
    api = api_for(admin_user)
    before = counts()
    for name in ("web:reminders_automatic", "web:reminders_arrears", "web:reminders_mis"):
        assert client.get(reverse(name)).status_code == 200
    for url in ("/api/reminders/automatic/", "/api/reminders/automatic/arrears/", "/api/reminders/mis/"):
        assert api.get(url).status_code == 200
    assert api.get("/api/reminders/mis/").json()["run_at"] == "08:00"
    assert counts() == before
    api.put("/api/reminders/automatic/", {"birthday_enabled": True}, format="json")
    assert AutomaticSetup.objects.get(entity=entity).birthday_enabled
    assert AuditEntry.objects.count() == before[3] + 1


def test_without_the_rights_nothing_is_read_or_written(entity, client):
    clerk = factories.make_user(entity=entity)
    client.force_login(clerk)
    api = api_for(clerk)
    before = counts()
    for name in ("web:reminders_automatic", "web:reminders_arrears", "web:reminders_mis", "web:reminders_mis_detail"):
        assert client.get(reverse(name)).status_code == 403
        assert client.post(reverse(name), {"run_at": "07:00"}).status_code in (403, 405)
    for url in ("/api/reminders/automatic/", "/api/reminders/automatic/arrears/", "/api/reminders/mis/"):
        assert api.put(url, {"run_at": "07:00"}, format="json").status_code == 403
        assert api.get(url).status_code == 403
    assert api.get("/api/reminders/runs/").status_code == 403
    assert api.get("/api/reminders/reports/mis-detail/").status_code == 403
    assert counts() == before
