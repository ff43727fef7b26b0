"""A refused form answers 400 with the form and its field errors, and writes nothing, on every
screen (web.forms.form_status); the same screens still answer a GET with 200. htmx swaps a 400
answer to a form it sent (static/web/imali.js, htmx:beforeSwap), so the errors show there too."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils.html import escape

from imali.loans.services import loan_apply
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_loan, make_product

pytestmark = pytest.mark.django_db

# Tables a refused form may still touch: the session of the signed-in user.
NOT_DATA = {"sessions"}


def _row_counts() -> dict[str, int]:
    return {model._meta.label: model._default_manager.count() for model in apps.get_models()
            if model._meta.app_label not in NOT_DATA and model._meta.managed and not model._meta.proxy}


@pytest.fixture
def world(entity, admin_user):
    """One object of each kind the refused forms name, in `entity`, made through the services."""
    from imali.tenancy.models import Module, Region

    entity.modules = [*entity.modules, *(m.value for m in Module if m.value not in entity.modules)]
    entity.save(update_fields=["modules"])
    admin_user.disbursement_limit = Decimal("100000")
    admin_user.save(update_fields=["disbursement_limit"])
    product = make_product(entity, name="Refusals")
    active = make_loan(entity, user=admin_user, product=product)
    application = loan_apply(entity=entity, actor=admin_user, client=active.client, product=product,
                             principal="1000", instalments=2, applied_on=active.disbursed_on)
    employer = factories.make_employer(entity=entity, actor=admin_user, name="Department of Health")
    return {"client": active.client, "loan": active, "application": application, "product": product,
            "employer": employer, "user": admin_user, "role": entity.roles.first(), "branch": entity.branches.first(),
            "region": Region.objects.create(entity=entity, name="Gauteng"), "entity": entity}


# (area, url name, route arguments from `world`, query, posted data, form in the context, field refused)
CASES = [
    ("clients", "web:client_create", {}, "", {"surname": "", "id_number": "x"}, "form", "surname"),
    ("clients", "web:client_edit", {"client_id": "client"}, "", {"surname": ""}, "form", "surname"),
    ("clients", "web:client_note_create", {"client_id": "client"}, "", {"text": ""}, "form", "text"),
    ("clients", "web:client_account_create", {"client_id": "client"}, "", {"kind": "nonsense"}, "form", "kind"),
    ("clients", "web:employer_create", {}, "", {"name": ""}, "form", "name"),
    ("clients", "web:paypoint_create", {"employer_id": "employer"}, "", {"number": "", "name": "x"}, "paypoint_form",
     "number"),
    ("loans", "web:product_create", {}, "", {"name": ""}, "form", "name"),
    ("loans", "web:loan_apply", {"client_id": "client"}, "", {"principal": "١٢٣", "instalments": "２"}, "form",
     "principal"),
    ("loans", "web:loan_cancel", {"loan_id": "application"}, "", {"reason": ""}, "form", "reason"),
    ("loans", "web:receipt_create", {"loan_id": "loan"}, "", {"amount": "1e10", "value_date": "2026-01-06"}, "form",
     "amount"),
    ("loans", "web:loan_write_off", {"loan_id": "loan"}, "", {"reason": ""}, "form", "reason"),
    ("loans", "web:non_loan_debit_create", {"client_id": "client"}, "",
     {"description": "Fee", "amount": "-5", "debit_date": "2026-01-06"}, "form", "amount"),
    ("messaging", "web:messaging_client_sms", {"client_id": "client"}, "",
     {"template": "no-such-template", "idempotency_key": "k", "preview": "1"}, "form", "template"),
    ("messaging", "web:messaging_replies_setup", {}, "", {"user": "١"}, "form", "user"),
    ("messaging", "web:messaging_credits", {}, "", {"low_warning_amount": "-1"}, "form", "low_warning_amount"),
    ("messaging", "web:messaging_email_credits", {}, "", {"low_warning_amount": "x"}, "form", "low_warning_amount"),
    ("templates", "web:messaging_template_edit", {}, "?type=arrears", {"text": "", "save": "1"}, "form", "text"),
    ("templates", "web:messaging_email_template_edit", {}, "?type=arrears", {"text": "", "save": "1"}, "form", "text"),
    ("templates", "web:messaging_email_template_edit", {}, "?type=arrears",
     {"test_send": "1", "to_address": "not an address", "subject": "Hi", "idempotency_key": "k"}, "test_form",
     "to_address"),
    ("batches", "web:batch_new", {}, "?type=arrears", {"due_from": "2026-13-01", "idempotency_key": "k", "send": "1"},
     "form", "due_from"),
    ("reminders", "web:reminders_automatic", {}, "", {"run_at": "25:00", "due_days_before": "3"}, "form", "run_at"),
    ("reminders", "web:reminders_arrears", {}, "", {"arrears_minimum": "10", "arrears_repeat_days": "١٢"}, "form",
     "arrears_repeat_days"),
    ("reminders", "web:reminders_mis", {}, "", {"run_at": "x"}, "form", "run_at"),
    ("marketing", "web:marketing", {}, "", {"number_from": "9", "number_to": "2", "overdues": "include"}, "form",
     "number_to"),
    ("smsbanking", "web:smsbank_pin", {}, "", {"client_number": "１２３", "pin": "4826", "repeat": "4826"}, "form",
     "client_number"),
    ("smsbanking", "web:smsbank_sheets", {}, "", {"officer": "x", "due_by": "2026-01-01"}, "form", "officer"),
    ("smsbanking", "web:smsbank_provider_create", {}, "", {"name": "", "sender": "MPESA", "pattern": "x"}, "form",
     "name"),
    ("signing", "web:signing_setup", {}, "", {"threshold": "500", "code_length": "3", "validity_minutes": "5",
                                              "tries_per_code": "5"}, "form", "code_length"),
    ("signing", "web:signing_mandate_create", {"loan_id": "loan"}, "", {"kind": "nonsense", "collection_day": "32"},
     "form", "kind"),
    ("mobilemoney", "web:mm_setup_create", {}, "", {"provider": "nope"}, "form", "provider"),
    ("mobilemoney", "web:mm_setup_create", {}, "", {"provider": "mpesa", "base_url": "http://127.0.0.1:8051",
                                                    "consumer_key": "k", "callback_base_url": "١"}, "form",
     "callback_base_url"),
    ("paystream", "web:paystream_settings", {}, "", {"base_url": "not a url", "username": "u", "timeout_seconds": "10"},
     "form", "base_url"),
    ("tenancy", "web:user_create", {}, "", {"username": ""}, "form", "username"),
    ("tenancy", "web:user_edit", {"user_id": "user"}, "", {"username": ""}, "form", "username"),
    ("tenancy", "web:role_create", {}, "", {"name": "", "rights": ["no-such-right"]}, "form", "rights"),
    ("tenancy", "web:role_edit", {"role_id": "role"}, "", {"name": ""}, "form", "name"),
    ("tenancy", "web:branch_create", {}, "", {"code": "", "name": ""}, "form", "name"),
    ("tenancy", "web:branch_edit", {"branch_id": "branch"}, "", {"code": "", "name": ""}, "form", "name"),
    ("tenancy", "web:region_list", {}, "", {"name": ""}, "form", "name"),
    ("tenancy", "web:region_edit", {"region_id": "region"}, "", {"name": ""}, "form", "name"),
    ("tenancy", "web:password_change", {}, "", {"current_password": "", "password": "x"}, "form", "current_password"),
]


def _url(world, name, kwargs, query):
    return reverse(name, kwargs={key: world[value].pk for key, value in kwargs.items()}) + query


@pytest.mark.parametrize(("area", "name", "kwargs", "query", "data", "form_name", "field"), CASES,
                         ids=[f"{c[0]}:{c[1].removeprefix('web:')}:{c[6]}" for c in CASES])
def test_a_refused_form_is_a_400_with_the_fields_error_and_writes_nothing(
        client, world, area, name, kwargs, query, data, form_name, field):
    client.force_login(world["user"])
    url = _url(world, name, kwargs, query)
    # The page itself is unchanged: a GET is a 200 with an unbound form. (Opening some pages makes
    # rows the entity lacks yet, such as its credit ledgers: counted from here on.)
    page = client.get(url)
    assert page.status_code == 200 and not page.context[form_name].is_bound
    before = _row_counts()
    response = client.post(url, data)
    assert response.status_code == 400, (url, response.status_code)
    form = response.context[form_name]
    assert field in form.errors, (url, dict(form.errors))
    body = response.content.decode()
    assert f'name="{field}"' in body and escape(form.errors[field][0]) in body  # the form again, with its error
    assert _row_counts() == before, url


def test_operator_screens_refuse_with_a_400(client, entity, operator):
    client.force_login(operator)
    for url, data, field in (
            (reverse("web:entity_create"), {"name": "", "country": "ZA"}, "name"),
            (reverse("web:entity_edit", kwargs={"entity_id": entity.pk}), {"name": ""}, "name"),
            (reverse("web:messaging_operator_credits"), {"entity": "١", "channel": "sms", "amount": "5"}, "entity")):
        before = _row_counts()
        response = client.post(url, data)
        assert response.status_code == 400 and field in response.context["form"].errors, url
        assert _row_counts() == before, url
        assert client.get(url).status_code == 200


def test_a_refused_sign_in_is_a_400_and_a_good_one_still_redirects(client, entity):
    factories.make_user(entity=entity, username="teller", password="correct-horse-battery")
    url = reverse("web:login")
    assert client.get(url).status_code == 200
    blank = client.post(url, {"username": "", "password": ""})
    assert blank.status_code == 400 and "username" in blank.context["form"].errors
    wrong = client.post(url, {"username": "teller", "password": "not-the-password"})
    assert wrong.status_code == 400 and "Username or password is wrong." in wrong.content.decode()
    good = client.post(url, {"username": "teller", "password": "correct-horse-battery"})
    assert good.status_code == 302


def test_accepted_posts_still_redirect(client, world):
    client.force_login(world["user"])
    note = client.post(reverse("web:client_note_create", kwargs={"client_id": world["client"].pk}), {"text": "Called"})
    assert note.status_code == 302
    region = client.post(reverse("web:region_list"), {"name": "Limpopo"})
    assert region.status_code == 302
    # A valid post that shows a next step (the single-SMS preview) is a 200, not a refusal.
    from imali.messaging.credits import credits_assign

    operator = factories.make_operator()
    credits_assign(actor=operator, entity=world["entity"], channel="sms", amount=5)
    preview = client.post(reverse("web:messaging_client_sms", kwargs={"client_id": world["client"].pk}),
                          {"template": "", "text": "Hello", "idempotency_key": "k", "preview": "1"})
    assert preview.status_code == 200 and preview.context["preview"] is not None


def test_a_refused_form_sent_by_htmx_is_a_400_carrying_the_form_and_its_errors(client, world):
    """No screen posts its forms through htmx yet (htmx only polls); a form sent so, as a boosted
    form would be, gets the same 400 with the form's markup and its error, which imali.js lets
    htmx swap in (a 400 to a non-GET request), while a poll's 400 is still not swapped."""
    client.force_login(world["user"])
    url = reverse("web:client_note_create", kwargs={"client_id": world["client"].pk})
    response = client.post(url, {"text": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    body = response.content.decode()
    assert 'name="text"' in body and "This field is required." in body
    js = Path(_static_path("web/imali.js")).read_text()
    swap = re.search(r'addEventListener\("htmx:beforeSwap".*?\}\);', js, re.S).group(0)
    assert "status === 400" in swap and 'toLowerCase() !== "get"' in swap and "shouldSwap = true" in swap
    assert "isError = false" in swap


def _static_path(name: str) -> str:
    from django.contrib.staticfiles import finders

    found = finders.find(name)
    assert found, name
    return found


def test_a_refused_action_on_a_list_page_shows_the_page_and_the_error_with_a_400(client, world):
    """Forms whose own page is another screen's (a paypoint on the employer's page) answer with
    that page, its form bound and refused, and a 400."""
    client.force_login(world["user"])
    url = reverse("web:paypoint_create", kwargs={"employer_id": world["employer"].pk})
    response = client.post(url, {"number": "", "name": ""})
    assert response.status_code == 400 and {"number", "name"} <= set(response.context["paypoint_form"].errors)
    assert world["employer"].name in response.content.decode()


@pytest.mark.parametrize("rights", [[Right.MANAGE_CLIENTS]])
def test_the_status_follows_the_form_not_the_user(client, entity, rights):
    """A user with only the right the screen needs sees the same 400."""
    user = factories.make_user(entity=entity, rights=rights)
    client.force_login(user)
    response = client.post(reverse("web:client_create"), {"surname": ""})
    assert response.status_code == 400 and "surname" in response.context["form"].errors


def test_a_refused_keyword_alias_shows_the_settings_page_with_its_error_and_a_400(client, world):
    """The alias form posts to its own address and lives on the SMS-banking settings page: refused,
    that page answers again with the alias form's error beside the settings form (unbound)."""
    client.force_login(world["user"])
    url = reverse("web:smsbank_alias_add")
    before = _row_counts()
    for data, field in (({"word": "BALANCE", "command": "balance"}, "word"),
                        ({"word": "two words", "command": "balance"}, "word"),
                        ({"word": "TSHALELO", "command": "nonsense"}, "command")):
        response = client.post(url, data)
        assert response.status_code == 400, data
        alias_form = response.context["alias_form"]
        assert field in alias_form.errors and not response.context["form"].is_bound
        assert escape(alias_form.errors[field][0]) in response.content.decode()
    assert _row_counts() == before
    assert client.post(url, {"word": "TSHALELO", "command": "balance"}).status_code == 302


def test_a_refused_approval_shows_the_loans_page_with_the_error_and_a_400(client, world):
    """Approving a loan already approved (a second click) is refused on the loan's page, saying why."""
    client.force_login(world["user"])
    url = reverse("web:loan_approve", kwargs={"loan_id": world["application"].pk})
    # The client's first loan, paid out in January, is in arrears: the box must be ticked.
    assert client.post(url, {"arrears_seen": "on"}).status_code == 302
    before = _row_counts()
    again = client.post(url, {"arrears_seen": "on"})
    assert again.status_code == 400 and again.context["approve_form"].errors
    message = again.context["approve_form"].non_field_errors()[0]
    assert escape(message) in again.content.decode()
    assert _row_counts() == before


def test_a_refused_button_action_on_the_signing_screens_is_a_400_saying_why(client, world):
    """Send code is a form of one button: the service's refusal (Enrol Client switched off here) is
    said on the page, as a 400 like any refused form, and no code is made."""
    from imali.signing.models import Challenge

    client.force_login(world["user"])
    url = reverse("web:signing_enrolment", kwargs={"client_id": world["client"].pk})
    assert client.get(url).status_code == 200
    before = _row_counts()
    response = client.post(url, {"action": "send"})
    assert response.status_code == 400
    assert [str(m) for m in response.context["messages"]]  # the refusal, on this page
    assert not Challenge.objects.exists() and _row_counts() == before


def test_a_refused_send_on_the_loan_signing_page_is_a_400_saying_why(client, world):
    from imali.signing.models import Challenge

    client.force_login(world["user"])
    url = reverse("web:signing_loan", kwargs={"loan_id": world["application"].pk})
    assert client.get(url).status_code == 200
    before = _row_counts()
    response = client.post(url, {"action": "send"})  # the client is not enrolled: no code can go
    assert response.status_code == 400
    assert [str(m) for m in response.context["messages"]]
    assert not Challenge.objects.exists() and _row_counts() == before
