"""The setups (rights, audit, bounds, isolation) through the services, the screens and the API,
and the MIS Detail report (filters, isolation, bounded queries)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.models import MessageType, OutboxMessage
from imali.reminders import services
from imali.reminders.models import AutomaticSetup, MisRecipient, MisSetup
from imali.tenancy.models import User
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


def test_general_and_arrears_settings_need_their_own_rights(entity):
    general = factories.make_user(entity=entity, rights=[Right.MAXSMS_GENERAL_SETUP])
    arrears = factories.make_user(entity=entity, rights=[Right.MAXSMS_ARREARS_SETUP])
    services.automatic_setup_update(actor=general, entity=entity, data={"birthday_enabled": True, "due_days_before": 5})
    with pytest.raises(PermissionDenied):
        services.automatic_setup_update(actor=general, entity=entity, data={"arrears_minimum": Decimal("10.00")})
    with pytest.raises(PermissionDenied):
        services.automatic_setup_update(actor=arrears, entity=entity, data={"birthday_enabled": False})
    services.automatic_setup_update(actor=arrears, entity=entity, data={"arrears_enabled": True,
                                                                         "arrears_minimum": Decimal("75.50")})
    setup = AutomaticSetup.objects.get(entity=entity)
    assert (setup.birthday_enabled, setup.due_days_before, setup.arrears_enabled, setup.arrears_minimum) == (
        True, 5, True, Decimal("75.50"))
    entries = AuditEntry.objects.filter(action=AuditAction.AUTOMATIC_SMS_CHANGED, entity=entity).order_by("id")
    assert [e.actor_id for e in entries] == [general.pk, arrears.pk]
    assert entries[1].before == {"arrears_enabled": False, "arrears_minimum": "50.00"}
    assert entries[1].after == {"arrears_enabled": True, "arrears_minimum": "75.50"}


def test_settings_out_of_bounds_are_refused_naming_the_field(entity, admin_user):
    with pytest.raises(ValidationError) as caught:
        services.automatic_setup_update(actor=admin_user, entity=entity, data={"due_days_before": 31})
    assert "due_days_before" in caught.value.error_dict
    with pytest.raises(ValidationError) as caught:
        services.automatic_setup_update(actor=admin_user, entity=entity, data={"arrears_repeat_days": 0})
    assert "arrears_repeat_days" in caught.value.error_dict


def test_another_entitys_user_changes_nothing(entity, other_entity):
    stranger = factories.make_admin(entity=other_entity)
    with pytest.raises(PermissionDenied):
        services.automatic_setup_update(actor=stranger, entity=entity, data={"birthday_enabled": True})
    with pytest.raises(PermissionDenied):
        services.mis_setup_update(actor=stranger, entity=entity, data={"management_enabled": True})


def test_mis_recipients_are_active_users_of_the_entity_with_a_cellphone(entity, other_entity, admin_user):
    manager = factories.make_user(entity=entity)
    phoneless = factories.make_user(entity=entity)
    User.objects.filter(pk=phoneless.pk).update(cellphone="")
    stranger = factories.make_user(entity=other_entity)
    with pytest.raises(ValidationError) as caught:
        services.mis_setup_update(actor=admin_user, entity=entity, data={},
                                  recipients={"management": [manager.pk, phoneless.pk, stranger.pk]})
    messages = caught.value.message_dict["management_recipients"]
    assert any("no cellphone" in m for m in messages) and any(str(stranger.pk) in m for m in messages)
    assert not MisRecipient.objects.exists()
    services.mis_setup_update(actor=admin_user, entity=entity, data={"management_enabled": True, "run_at": dt.time(7, 30)},
                              recipients={"management": [manager.pk]})
    assert list(MisRecipient.objects.values_list("stream", "user_id")) == [("management", manager.pk)]
    entry = AuditEntry.objects.get(action=AuditAction.MIS_SMS_CHANGED)
    assert entry.after["management_recipients"] == [manager.pk] and entry.after["management_enabled"] is True


# --- Screens ---------------------------------------------------------------------------------------

def test_automatic_screens_save_and_are_guarded(client, entity, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("web:reminders_automatic"))
    assert page.status_code == 200 and b"Automatic SMS setup" in page.content
    response = client.post(reverse("web:reminders_automatic"), {
        "run_at": "06:45", "due_enabled": "on", "due_days_before": "2", "birthday_enabled": "on"})
    assert response.status_code == 302
    response = client.post(reverse("web:reminders_arrears"), {
        "arrears_enabled": "on", "arrears_minimum": "100.005", "arrears_repeat_days": "7"})
    assert response.status_code == 400 and b"arrears_minimum" in response.content  # three decimals: refused
    client.post(reverse("web:reminders_arrears"), {"arrears_enabled": "on", "arrears_minimum": "100.00",
                                                   "arrears_repeat_days": "7"})
    setup = AutomaticSetup.objects.get(entity=entity)
    assert (setup.run_at, setup.due_days_before, setup.arrears_minimum) == (dt.time(6, 45), 2, Decimal("100.00"))
    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(clerk)
    for name in ("web:reminders_automatic", "web:reminders_arrears", "web:reminders_mis", "web:reminders_mis_detail"):
        assert client.get(reverse(name)).status_code == 403


def test_nav_shows_the_screens_to_those_with_the_right(client, entity):
    arrears_only = factories.make_user(entity=entity, rights=[Right.MAXSMS_ARREARS_SETUP, Right.REPORT_MIS_DETAIL])
    client.force_login(arrears_only)
    home = client.get("/").content.decode()
    assert reverse("web:reminders_arrears") in home and reverse("web:reminders_mis_detail") in home
    assert reverse("web:reminders_mis") not in home


def test_mis_screen_saves_streams_and_recipients(client, entity, admin_user):
    client.force_login(admin_user)
    manager = factories.make_user(entity=entity)
    assert client.get(reverse("web:reminders_mis")).status_code == 200
    response = client.post(reverse("web:reminders_mis"), {
        "run_at": "07:00", "management_enabled": "on", "management_recipients": [str(manager.pk)],
        "branch_enabled": "on", "branch_recipients": [str(manager.pk)]})
    assert response.status_code == 302, response.content
    setup = MisSetup.objects.get(entity=entity)
    assert setup.management_enabled and setup.branch_enabled and not setup.monthly_enabled
    assert sorted(MisRecipient.objects.values_list("stream", flat=True)) == ["branch", "management"]


def _mis_message(entity, user, key, **fields):
    return OutboxMessage.objects.create(
        entity=entity, user=user, number=user.cellphone or "+27820000000", message_type=MessageType.MIS, text="MIS",
        segments=1, credits=1, priority=1, idempotency_key=key, next_attempt_at=timezone.now(),
        created_at=fields.pop("created_at", timezone.now()), **fields)


def test_mis_detail_lists_the_entitys_mis_sms_with_filters(client, entity, other_entity, admin_user,
                                                          django_assert_max_num_queries):
    manager = factories.make_user(entity=entity)
    stranger = factories.make_user(entity=other_entity)
    for n in range(30):
        _mis_message(entity, manager, f"mis:management:2026-02-{n % 28 + 1:02d}:u{manager.pk}:{n}")
    _mis_message(entity, manager, f"mis:branch:2026-02-11:u{manager.pk}", status="delivered")
    _mis_message(other_entity, stranger, f"mis:management:2026-02-11:u{stranger.pk}")
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        page = client.get(reverse("web:reminders_mis_detail"))
    assert page.status_code == 200
    assert page.context["page"].paginator.count == 31
    only_branch = client.get(reverse("web:reminders_mis_detail") + "?stream=branch")
    assert only_branch.context["page"].paginator.count == 1 and b"Daily (per branch)" in only_branch.content
    # The number as people read it on the screen (the export keeps E.164 for machines).
    from imali.core.phones import display_phone

    number = manager.cellphone or "+27820000000"
    assert f"<td>{display_phone(number)}</td>".encode() in only_branch.content and number.encode() not in only_branch.content
    csv = client.get(reverse("web:reminders_mis_detail") + "?stream=branch&export=csv")
    body = b"".join(csv.streaming_content).decode()
    assert "Daily (per branch)" in body and body.count("\n") == 2
    assert AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED, entity=entity).exists()
    # A user of the other entity as a filter is refused, not shown.
    assert client.get(reverse("web:reminders_mis_detail") + f"?user={stranger.pk}").context["page"] is None


# --- API -------------------------------------------------------------------------------------------

def test_api_reads_and_changes_the_setups(client, entity, other_entity, admin_user):
    client.force_login(admin_user)
    url = reverse("api:reminders-automatic")
    assert client.get(url).json()["due_days_before"] == 3
    response = client.put(url, {"due_enabled": True, "due_days_before": 4, "run_at": "06:30"}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"run_at": "06:30", "due_enabled": True, "due_days_before": 4, "received_enabled": False,
                               "birthday_enabled": False}
    bad = client.put(url, {"due_days_before": 99}, content_type="application/json")
    assert bad.status_code == 400 and "due_days_before" in bad.json()
    arrears = client.put(reverse("api:reminders-automatic-arrears"), {"arrears_minimum": "80.00"},
                         content_type="application/json")
    assert arrears.status_code == 200 and arrears.json()["arrears_minimum"] == "80.00"
    manager = factories.make_user(entity=entity)
    stranger = factories.make_user(entity=other_entity)
    mis = client.put(reverse("api:reminders-mis"), {"monthly_enabled": True, "monthly_recipients": [manager.pk]},
                     content_type="application/json")
    assert mis.status_code == 200 and mis.json()["monthly_recipients"] == [manager.pk]
    refused = client.put(reverse("api:reminders-mis"), {"monthly_recipients": [stranger.pk]}, content_type="application/json")
    assert refused.status_code == 400 and "monthly_recipients" in refused.json()
    assert client.get(reverse("api:reminders-runs")).status_code == 200
    clerk = factories.make_user(entity=entity, rights=[Right.MAXSMS_GENERAL_SETUP])
    client.force_login(clerk)
    assert client.put(reverse("api:reminders-automatic-arrears"), {"arrears_minimum": "1.00"},
                      content_type="application/json").status_code == 403
    assert client.get(reverse("api:reminders-report-mis-detail")).status_code == 403


def test_api_mis_detail_is_the_callers_entity_only(client, entity, other_entity, admin_user):
    manager = factories.make_user(entity=entity)
    stranger = factories.make_user(entity=other_entity)
    mine = _mis_message(entity, manager, f"mis:cash_flow:2026-02-11:u{manager.pk}")
    _mis_message(other_entity, stranger, f"mis:cash_flow:2026-02-11:u{stranger.pk}")
    client.force_login(admin_user)
    rows = client.get(reverse("api:reminders-report-mis-detail") + "?stream=cash_flow").json()["results"]
    assert [(r["id"], r["stream"]) for r in rows] == [(mine.pk, "cash_flow")]


def test_recent_runs_show_in_peoples_words(client, entity, admin_user):
    from imali.reminders.models import DailyRun

    DailyRun.objects.create(entity=entity, kind="automatic", business_date=dt.date(2026, 2, 10),
                            finished_at=timezone.now(), results={"payment_due": {"queued": 3, "skipped": 1},
                                                                  "arrears": {"disabled": True, "skipped": 4}})
    DailyRun.objects.create(entity=entity, kind="mis", business_date=dt.date(2026, 2, 10), finished_at=timezone.now(),
                            results={"branch:N1": {"queued": 1, "skipped": 0},
                                     "branch:no_home_branch": {"skipped": 2}})
    client.force_login(admin_user)
    page = client.get(reverse("web:reminders_automatic")).content.decode()
    assert "Payment due reminder: 3 queued, 1 skipped" in page
    assert "Payment arrears: switched off, 4 left out" in page and "payment_due" not in page
    mis = client.get(reverse("web:reminders_mis")).content.decode()
    assert "Daily (per branch): N1: 1 queued" in mis
    assert "Daily (per branch): recipients without a home branch" in mis


def test_setup_screens_read_a_bounded_number_of_rows(client, entity, admin_user, django_assert_max_num_queries):
    from imali.reminders.models import DailyRun

    for n in range(15):
        DailyRun.objects.create(entity=entity, kind="automatic" if n % 2 else "mis",
                                business_date=dt.date(2026, 2, 1) + dt.timedelta(days=n), finished_at=timezone.now(),
                                results={"arrears": {"queued": n, "skipped": 0}})
    for _ in range(10):
        MisRecipient.objects.create(entity=entity, stream="management", user=factories.make_user(entity=entity))
    client.force_login(admin_user)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("web:reminders_automatic")).status_code == 200
    with django_assert_max_num_queries(18):
        assert client.get(reverse("web:reminders_mis")).status_code == 200
