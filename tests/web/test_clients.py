import datetime as dt

import pytest
from django.urls import reverse

from imali.clients.models import Client, ClientAccount, ClientNote
from imali.clients.services import CLIENT_EDITABLE_FIELDS
from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.rights import Right
from imali.web.forms import CLIENT_FORM_FIELDS
from tests import factories

pytestmark = pytest.mark.django_db


def _post_data(entity, **overrides):
    data = {"branch": entity.branches.first().pk, "title": "Mr", "full_names": "Thabo Johannes", "surname": "Mokoena",
            "id_type": "sa_id", "id_number": "7503305044089", "date_of_birth": "1975-03-30", "gender": "M",
            "cellphone": "082 123 4567", "status": "good", "payment_frequency": "monthly",
            "payment_move_direction": "before", "new_loans_allowed": "on"}
    data.update(overrides)
    return data


@pytest.fixture
def clerk(login_as, entity):
    return login_as(entity, [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS])


def test_the_form_offers_every_editable_client_field():
    assert set(CLIENT_FORM_FIELDS) == set(CLIENT_EDITABLE_FIELDS)


def test_create_a_client_through_the_form(client, entity, clerk):
    response = client.post(reverse("web:client_create"), _post_data(entity, email="thabo@example.co.za", salary="12500.50"))
    created = Client.objects.get(entity=entity)
    assert response.status_code == 302 and response["Location"] == reverse("web:client_detail", kwargs={"client_id": created.pk})
    assert (created.cellphone, created.created_by, str(created.salary)) == ("+27821234567", clerk, "12500.50")
    entry = AuditEntry.objects.get(action=AuditAction.CLIENT_CREATED)
    assert entry.actor == clerk and entry.ip_address == "127.0.0.1"
    page = client.get(response["Location"]).content.decode()
    assert "created." in page and "Mokoena" in page


def test_bad_values_are_shown_next_to_their_fields_and_nothing_is_written(client, entity, clerk):
    audit_before = AuditEntry.objects.count()
    response = client.post(reverse("web:client_create"), _post_data(
        entity, id_number="8503305044089", cellphone="12345", bonus_month="13", payment_day="40",
        email="not-an-email", date_of_birth="1975-03-30"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert {"id_number", "cellphone", "email"} <= set(errors)
    assert "checksum" in " ".join(errors["id_number"]).lower()
    page = response.content.decode()
    for field in ("id_number", "cellphone", "email"):
        assert f'data-error-for="{field}"' in page
    assert Client.objects.count() == 0 and AuditEntry.objects.count() == audit_before


def test_service_errors_land_on_their_fields(client, entity, clerk):
    # These values pass the form's type checks; only the service's rules refuse them.
    response = client.post(reverse("web:client_create"), _post_data(
        entity, bonus_month="13", payment_day="40", gender="F", salary="-5"))
    errors = response.context["form"].errors
    assert {"bonus_month", "payment_day", "gender", "salary"} <= set(errors), errors
    page = response.content.decode()
    assert "Bonus month must be 1 to 12." in page and 'data-error-for="bonus_month"' in page
    assert Client.objects.count() == 0


def test_paypoint_of_another_employer_is_refused_on_the_paypoint_field(client, entity, clerk, admin_user):
    from imali.clients.services import paypoint_create

    first = factories.make_employer(entity=entity, name="First")
    second = factories.make_employer(entity=entity, name="Second")
    paypoint = paypoint_create(employer=second, actor=admin_user, number="1", name="North")
    response = client.post(reverse("web:client_create"), _post_data(entity, employer=first.pk, paypoint=paypoint.pk))
    assert "paypoint" in response.context["form"].errors
    assert Client.objects.count() == 0


@pytest.mark.parametrize("query", ["NUMBER", "7503305044089", "Mokoena", "mokoena", "Thabo Mokoena", "0821234567",
                                   "082 123 4567", "+27821234567"])
def test_search_finds_the_client(client, entity, clerk, query):
    target = factories.make_client(entity=entity)
    factories.make_client(entity=entity, full_names="Sipho", surname="Dlamini", id_number="8001015009087",
                          date_of_birth=dt.date(1980, 1, 1), cellphone="0831112222")
    query = str(target.number) if query == "NUMBER" else query
    response = client.get(reverse("web:client_search"), {"q": query})
    assert [c.pk for c in response.context["results"]] == [target.pk]
    assert reverse("web:client_detail", kwargs={"client_id": target.pk}) in response.content.decode()


def test_search_with_no_match_says_so(client, entity, clerk):
    factories.make_client(entity=entity)
    response = client.get(reverse("web:client_search"), {"q": "Nobody"})
    assert response.context["results"] == [] and "No client matches" in response.content.decode()


def test_edit_a_client(client, entity, clerk):
    target = factories.make_client(entity=entity)
    url = reverse("web:client_edit", kwargs={"client_id": target.pk})
    form = client.get(url).context["form"]
    assert form["surname"].value() == "Mokoena" and form["date_of_birth"].value() == dt.date(1975, 3, 30)
    response = client.post(url, _post_data(entity, surname="Dlamini", marketing_consent="on"))
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.surname == "Dlamini" and target.marketing_consent
    assert AuditEntry.objects.get(action=AuditAction.CLIENT_UPDATED).after == {"surname": "Dlamini"}


def test_edit_with_a_bad_value_changes_nothing(client, entity, clerk):
    target = factories.make_client(entity=entity)
    response = client.post(reverse("web:client_edit", kwargs={"client_id": target.pk}),
                           _post_data(entity, surname="Dlamini", cellphone="0123"))
    assert "cellphone" in response.context["form"].errors
    target.refresh_from_db()
    assert target.surname == "Mokoena"


def test_add_a_bank_account_and_a_wallet(client, entity, clerk):
    target = factories.make_client(entity=entity)
    url = reverse("web:client_account_create", kwargs={"client_id": target.pk})
    bad = client.post(url, {"kind": "bank", "purpose": "both", "bank_name": "FNB", "branch_code": "25065"})
    assert {"branch_code", "account_number", "account_type"} <= set(bad.context["form"].errors)
    assert not ClientAccount.objects.exists()
    ok = client.post(url, {"kind": "bank", "purpose": "both", "bank_name": "FNB", "branch_code": "250655",
                           "account_number": "62000000001", "account_type": "cheque"})
    assert ok.status_code == 302
    wallet = client.post(url, {"kind": "wallet", "purpose": "payout", "wallet_provider": "MTN MoMo", "wallet_number": "082 123 4567"})
    assert wallet.status_code == 302
    assert ClientAccount.objects.filter(client=target).count() == 2
    assert ClientAccount.objects.get(kind="wallet").wallet_number == "+27821234567"


def test_add_a_note(client, entity, clerk):
    target = factories.make_client(entity=entity)
    url = reverse("web:client_note_create", kwargs={"client_id": target.pk})
    assert "text" in client.post(url, {"text": ""}).context["form"].errors
    response = client.post(url, {"text": "Prefers calls after five.", "is_display_note": "on"})
    assert response.status_code == 302
    note = ClientNote.objects.get(client=target)
    assert note.is_display_note and note.created_by == clerk
    page = client.get(reverse("web:client_detail", kwargs={"client_id": target.pk})).content.decode()
    assert "Prefers calls after five." in page


def test_detail_shows_fields_accounts_notes_and_history(client, entity, clerk, admin_user):
    from imali.clients.services import client_account_add, client_note_add, client_update

    employer = factories.make_employer(entity=entity, name="Department of Health")
    target = factories.make_client(entity=entity, actor=admin_user, employer=employer, email="thabo@example.co.za")
    client_account_add(client=target, actor=admin_user, data={"kind": "bank", "bank_name": "Capitec", "branch_code": "470010",
                                                             "account_number": "1234567890", "account_type": "savings"})
    client_note_add(client=target, actor=admin_user, text="Called about payslip")
    client_update(client=target, actor=admin_user, data={"surname": "Dlamini"})
    page = client.get(reverse("web:client_detail", kwargs={"client_id": target.pk})).content.decode()
    for expected in ("Identity", "Contact", "Employment", "Income and payment", "Administration and flags",
                     "7503305044089", "082 123 4567", "thabo@example.co.za", "Department of Health", "Capitec",
                     "1234567890", "Called about payslip", "Client created", "Client updated", "Mokoena", "Dlamini"):
        assert expected in page, expected


def test_search_page_query_count_does_not_grow_with_results(client, entity, clerk, django_assert_max_num_queries):
    for n in range(15):
        factories.make_client(entity=entity, surname="Mokoena", id_number=f"N{n:08d}", id_type="passport",
                              cellphone=f"08212345{n:02d}")
    # session, user, entity, user rights, role rights, the search itself
    with django_assert_max_num_queries(6):
        response = client.get(reverse("web:client_search"), {"q": "Mokoena"})
    assert len(response.context["results"]) == 15


def test_detail_page_query_count_does_not_grow_with_notes_accounts_or_history(
        client, entity, clerk, admin_user, django_assert_max_num_queries):
    from imali.clients.services import client_account_add, client_note_add, client_update

    target = factories.make_client(entity=entity, actor=admin_user)
    for n in range(6):
        client_account_add(client=target, actor=admin_user, data={"kind": "bank", "bank_name": "FNB", "branch_code": "250655",
                                                                 "account_number": f"6200000000{n}", "account_type": "cheque"})
        client_note_add(client=target, actor=admin_user, text=f"note {n}")
        client_update(client=target, actor=admin_user, data={"area": f"Area {n}"})
    # session, user, entity, user rights, role rights, client (with branch, employer, paypoint,
    # salesperson), accounts, notes (with author), history (with actor, and the client's enrolment,
    # signing and STOP entries in the same query), loans (with product), the newest SMS (with
    # sender), the marketing opt-out badge, the enrolment badge
    with django_assert_max_num_queries(13):
        response = client.get(reverse("web:client_detail", kwargs={"client_id": target.pk}))
    assert len(response.context["notes"]) == 6 and len(response.context["history"]) >= 7


def test_paypoint_options_name_their_employer_for_the_page_to_filter(client, entity, clerk, admin_user):
    from imali.clients.services import paypoint_create

    employer = factories.make_employer(entity=entity, name="Mine Co")
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="7", name="Shaft")
    page = client.get(reverse("web:client_create")).content.decode()
    assert f'value="{paypoint.pk}" data-employer="{employer.pk}"' in page
    assert 'data-follows="employer"' in page


@pytest.mark.parametrize("query", ["Mokoena, Thabo", "mokoena,thabo", "MOKOENA , Thabo Johannes", "Mokoena,",
                                   "Thabo Mokoena", "Mokoena Thabo", "Thabo Johannes Mokoena"])
def test_search_takes_the_name_as_the_list_shows_it_or_as_said(client, entity, clerk, query):
    target = factories.make_client(entity=entity)
    factories.make_client(entity=entity, full_names="Thabo", surname="Dlamini", id_number="8001015009087",
                          date_of_birth=dt.date(1980, 1, 1), cellphone="0831112222")
    factories.make_client(entity=entity, full_names="Sipho", surname="Mokoena", id_number="9202204720083",
                          date_of_birth=dt.date(1992, 2, 20), gender="F", cellphone="0831113333")
    listed = client.get(reverse("web:client_search"), {"q": "Mokoena"}).content.decode()
    assert f"{target.surname}, {target.name}" in listed  # the list's own form of the name
    response = client.get(reverse("web:client_search"), {"q": query})
    found = [c.pk for c in response.context["results"]]
    if query == "Mokoena,":
        assert target.pk in found and len(found) == 2
    else:
        assert found == [target.pk]
