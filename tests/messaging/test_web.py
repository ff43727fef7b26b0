import datetime as dt

import pytest
from django.urls import reverse

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.models import MarketingOptOut, MessageTemplate, OutboxMessage
from imali.tenancy.rights import Right
from tests import factories


def login(client, user):
    client.force_login(user)
    return client


def test_operator_assigns_credits_on_the_screen(client, entity, operator):
    login(client, operator)
    url = reverse("web:messaging_operator_credits")
    assert entity.name in client.get(url).content.decode()
    response = client.post(url, {"entity": entity.pk, "channel": "sms", "amount": 250, "note": "inv 7"})
    assert response.status_code == 302
    assert credit_balance(entity=entity) == 250


def test_lender_users_cannot_assign(admin_client, entity):
    assert admin_client.get(reverse("web:messaging_operator_credits")).status_code == 403
    assert admin_client.post(reverse("web:messaging_operator_credits"),
                             {"entity": entity.pk, "channel": "sms", "amount": 9}).status_code == 403


def test_credits_screen_shows_usage_and_saves_settings(admin_client, funded):
    body = admin_client.get(reverse("web:messaging_credits")).content.decode()
    assert "1,000" in body
    response = admin_client.post(reverse("web:messaging_credits"), {"monthly_limit": 500, "low_warning_amount": 20})
    assert response.status_code == 302
    response = admin_client.post(reverse("web:messaging_credits"), {"monthly_limit": -1, "low_warning_amount": 20})
    assert "monthly_limit" in response.context["form"].errors


def test_email_credit_settings_screen_sets_the_email_warning(client, entity, operator, other_entity):
    """MAXMAIL General Setup: the email ledger's own limit and low-credit warning (DOMAIN §3),
    reachable from the navigation; the SMS screen keeps the SMS ledger's settings."""
    from imali.messaging.models import CreditAccount

    credits_assign(actor=operator, entity=entity, channel="email", amount=40)
    credits_assign(actor=operator, entity=entity, channel="sms", amount=7)
    setup = factories.make_user(entity=entity, rights=[Right.MAXMAIL_GENERAL_SETUP])
    login(client, setup)
    url = reverse("web:messaging_email_credits")
    body = client.get(reverse("web:home")).content.decode()
    assert url in body and reverse("web:messaging_credits") not in body
    response = client.get(url)
    assert response.status_code == 200
    assert [e.amount for e in response.context["entries"]] == [40]  # the email ledger only
    assert response.context["usage"]["balance"] == 40
    stranger = factories.make_user(entity=other_entity)
    response = client.post(url, {"monthly_limit": 100, "low_warning_amount": 10, "low_warning_user": stranger.pk})
    assert "low_warning_user" in response.context["form"].errors
    response = client.post(url, {"monthly_limit": 100, "low_warning_amount": 10, "low_warning_user": setup.pk})
    assert response.status_code == 302
    email = CreditAccount.objects.get(entity=entity, channel="email")
    assert (email.monthly_limit, email.low_warning_amount, email.low_warning_user_id) == (100, 10, setup.pk)
    assert CreditAccount.objects.get(entity=entity, channel="sms").low_warning_amount == 0
    entry = AuditEntry.objects.get(action=AuditAction.CREDIT_SETTINGS_CHANGED, entity=entity)
    assert entry.subject == "email" and entry.after["low_warning_amount"] == 10
    # The SMS settings need the SMS right, on the screen and in the service.
    assert client.get(reverse("web:messaging_credits")).status_code == 403
    from django.core.exceptions import PermissionDenied

    from imali.messaging.credits import credit_settings_update
    with pytest.raises(PermissionDenied):
        credit_settings_update(actor=setup, entity=entity, channel="sms", monthly_limit=None, low_warning_amount=5)


def test_template_editor_previews_segments_and_names_ucs2(admin_client, entity, sms_client):
    url = reverse("web:messaging_template_edit") + "?type=birthday"
    response = admin_client.post(url, {"text": "Happy birthday {^Client Name^} ✓", "preview_client": sms_client.number, "preview": "1"})
    body = response.content.decode()
    assert "Happy birthday Thabo ✓" in body and "1 segment" in body and "“✓”" in body
    assert not MessageTemplate.objects.exists()
    response = admin_client.post(url, {"text": "{^Client Name^} happy", "save": "1"})
    assert "may not start with the field" in response.content.decode()
    response = admin_client.post(url, {"text": "Happy birthday {^Client Name^}", "save": "1"})
    assert response.status_code == 302
    assert MessageTemplate.objects.get(entity=entity, message_type="birthday").text == "Happy birthday {^Client Name^}"
    assert "Happy birthday {^Client Name^}" in admin_client.get(url).content.decode()


def test_single_sms_from_the_client_screen(admin_client, funded, sms_client):
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    form = admin_client.get(url).context["form"]
    key = form.initial["idempotency_key"]
    previewed = admin_client.post(url, {"text": "Please call the branch", "idempotency_key": key, "preview": "1"})
    preview = previewed.context["preview"]
    assert (preview.text, preview.segments, preview.encoding_label, preview.credits) == ("Please call the branch", 1, "GSM-7", 1)
    assert "Confirm and send" in previewed.content.decode()
    assert not OutboxMessage.objects.exists()  # nothing is sent before the confirm
    confirm = {"text": "Please call the branch", "template": "", "idempotency_key": key, "confirm": "1"}
    assert admin_client.post(url, confirm).status_code == 302
    assert admin_client.post(url, confirm).status_code == 302  # a double submit sends once
    message = OutboxMessage.objects.get(client=sms_client)
    assert message.message_type == "single" and credit_balance(entity=funded) == 999
    assert AuditEntry.objects.filter(action=AuditAction.MESSAGE_QUEUED, object_id=str(message.pk)).count() == 1
    body = admin_client.get(url).content.decode()
    assert "Please call the branch" in body and "Queued" in body
    # The client screen itself shows the newest messages with the history's columns.
    screen = admin_client.get(reverse("web:client_detail", kwargs={"client_id": sms_client.pk})).content.decode()
    recent = screen[screen.index('id="client-sms-recent"'):]
    assert "Please call the branch" in recent and '<td class="sms-status">Queued</td>' in recent
    assert f"<td>{message.created_by}</td>" in recent or f"<td>{message.created_by.get_full_name()}</td>" in recent


def test_single_sms_from_a_template_merged_for_the_client(admin_client, funded, sms_client):
    Client.objects.filter(pk=sms_client.pk).update(marketing_consent=True)  # a birthday greeting needs consent
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    response = admin_client.post(url, {"template": "birthday", "text": "", "idempotency_key": "t1", "preview": "1"})
    preview = response.context["preview"]
    # A birthday greeting is direct marketing: the opt-out instruction is added (the sender is named already).
    assert preview.text == f"Happy birthday Thabo from all of us at {funded.name}. Reply STOP to opt out"
    admin_client.post(url, {"template": "birthday", "text": "", "idempotency_key": "t1", "confirm": "1"})
    assert OutboxMessage.objects.get(client=sms_client).text == preview.text


def test_preview_names_ucs2_and_the_cost_of_a_long_message(admin_client, funded, sms_client):
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    preview = admin_client.post(url, {"text": "Molo ✓ " + "x" * 70, "idempotency_key": "u", "preview": "1"}).context["preview"]
    assert (preview.encoding_label, preview.segments, preview.credits) == ("UCS-2", 2, 2)


@pytest.mark.parametrize(("setup", "post", "error"), [
    ("no_credits", {"text": "Hello"}, "Not enough SMS credits"),
    ("no_cellphone", {"text": "Hello"}, "no cellphone number"),
    ("opted_out", {"template": "marketing"}, "answered STOP"),
    ("none", {"template": "marketing"}, "has not agreed to marketing messages"),
    ("none", {"template": "new_loan"}, "{^Loan Amount^}, which has no value for this client"),
    ("none", {}, "Choose a template or type a message."),
    ("none", {"template": "crm"}, "has not agreed to marketing messages"),  # CRM needs consent too
    ("none", {"template": "new_loan", "text": "Hello"}, "not both"),
])
def test_single_sms_errors_are_named_before_anything_is_sent(admin_client, entity, operator, sms_client, setup, post, error):
    if setup != "no_credits":
        credits_assign(actor=operator, entity=entity, channel="sms", amount=10)
    if setup == "no_cellphone":
        Client.objects.filter(pk=sms_client.pk).update(cellphone="")
    if setup == "opted_out":
        MarketingOptOut.objects.create(entity=entity, number=sms_client.cellphone, client=sms_client)
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    for step in ("preview", "confirm"):
        response = admin_client.post(url, {"template": "", "text": "", "idempotency_key": "e", step: "1", **post})
        assert response.status_code == 400 and response.context["preview"] is None
        assert error in response.content.decode(), step
    assert not OutboxMessage.objects.exists()


def test_history_columns_statuses_and_paging(admin_client, funded, sms_client, admin_user):
    from imali.messaging.services import message_enqueue

    for i in range(30):
        message_enqueue(entity=funded, number=sms_client.cellphone, text=f"Automatic {i}", message_type="arrears",
                        idempotency_key=f"h{i}", client=sms_client,
                        now=dt.datetime(2026, 3, 1, 21, 50, tzinfo=dt.UTC) + dt.timedelta(minutes=i))
    typed = message_enqueue(entity=funded, number=sms_client.cellphone, text="Typed", message_type="single",
                            idempotency_key="typed", client=sms_client, actor=admin_user,
                            now=dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC))
    OutboxMessage.objects.filter(text="Automatic 29").update(status="expired", error="expired after 3 attempts: no route")
    OutboxMessage.objects.filter(text="Automatic 28").update(status="delivered", gateway="local", provider_message_id="p9")
    OutboxMessage.objects.filter(pk=typed.pk).update(status="submitted", gateway="local", provider_message_id="p10")
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    response = admin_client.get(url)
    rows = response.context["rows"]
    assert len(rows) == 25 and response.context["page"].paginator.count == 31
    first = rows[0]
    # Johannesburg is two hours ahead of UTC.
    assert (first.date, first.time, first.type, first.message, first.status, first.user) == (
        "2026-03-02", "10:00:00", "Single SMS", "Typed", "Sent", admin_user.get_full_name() or admin_user.username)
    assert first.response == "Accepted by the SMS gateway (local), reference p10; awaiting the delivery report"
    expired, delivered = rows[1], rows[2]
    assert (expired.status, expired.user) == ("Failed", "System") and "no route" in expired.response
    assert delivered.status == "Delivered"
    assert rows[3].date == "2026-03-02" and rows[3].time == "00:17:00"  # 22:17 UTC, the next day locally
    body = response.content.decode()
    for column in ("Date", "Time", "Type", "Message", "Status", "Response", "User"):
        assert f"<th>{column}</th>" in body
    last = admin_client.get(url + "?page=2").context["rows"]
    assert len(last) == 6 and (last[-1].date, last[-1].time) == ("2026-03-01", "23:50:00")


def test_single_sms_needs_its_right(client, funded, sms_client):
    viewer = factories.make_user(entity=funded, rights=[Right.VIEW_CLIENTS])
    login(client, viewer)
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    assert client.get(url).status_code == 200
    assert client.post(url, {"text": "x", "idempotency_key": "k", "preview": "1"}).status_code == 403
    assert client.post(url, {"text": "x", "idempotency_key": "k", "confirm": "1"}).status_code == 403
    assert "Confirm and send" not in client.get(url).content.decode()


@pytest.mark.parametrize("name", ["web:messaging_outbox", "web:messaging_process_log", "web:messaging_reply_detail",
                                  "web:messaging_templates", "web:messaging_credits"])
def test_screens_open_for_rights_holders_and_refuse_others(client, admin_client, entity, name):
    assert admin_client.get(reverse(name)).status_code == 200
    login(client, factories.make_user(entity=entity))
    assert client.get(reverse(name)).status_code == 403


def test_single_sms_template_with_loan_fields_merges_the_clients_loan_book(admin_client, entity, operator, admin_user):
    """A template naming loan figures (DOMAIN §3 merge fields) is merged from the client's loan book."""
    from decimal import Decimal

    from imali.messaging.models import MessageTemplate
    from imali.messaging.services import client_loan_values, template_update
    from tests.loans.conftest import make_borrower, make_loan

    credits_assign(actor=operator, entity=entity, channel="sms", amount=10)
    admin_user.disbursement_limit = Decimal("100000")
    admin_user.save(update_fields=["disbursement_limit"])
    borrower, _ = make_borrower(entity, name="Lindiwe")
    from django.utils import timezone

    loan = make_loan(entity, user=admin_user, client=borrower, principal="2000", instalments=3,
                     disbursed_on=timezone.localdate())  # instalments still to come: a next date due
    template_update(actor=admin_user, entity=entity, message_type="new_loan",
                    text="Dear {^Client Name^} your loan of {^Loan Amount^} is paid out. Pay {^Next Amount Due^} "
                         "on {^Next Date Due^} Settle today with {^Client Total Settlement Amount^}")
    assert MessageTemplate.objects.filter(entity=entity, message_type="new_loan").exists()
    values = client_loan_values(entity=entity, client=borrower)
    assert values["Loan Amount"] == f"{entity.currency} 2,000.00"
    assert values["Instalment Amount"] == f"{entity.currency} {loan.instalment_amount:,.2f}"
    assert {"Next Date Due", "Next Amount Due", "Client Total Settlement Amount"} <= set(values)

    url = reverse("web:messaging_client_sms", kwargs={"client_id": borrower.pk})
    response = admin_client.post(url, {"template": "new_loan", "text": "", "idempotency_key": "loan", "preview": "1"})
    preview = response.context["preview"]
    assert preview is not None, response.context["form"].errors
    assert preview.text.startswith(f"Dear Lindiwe your loan of {entity.currency} 2,000.00 is paid out. Pay {entity.currency} ")
    assert values["Next Date Due"] in preview.text and values["Client Total Settlement Amount"] in preview.text


def test_single_sms_preview_shows_the_credits_left_with_separators(admin_client, funded, sms_client):
    # "1 credit of 4968 left": every other count of credits reads "4,968".
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    page = admin_client.post(url, {"text": "Please call the branch", "idempotency_key": "k-sep", "preview": "1"}).content.decode()
    assert "of 1,000 left" in page
    # The client's number as people read it, on the page and in the preview, not +27...
    from imali.core.phones import display_phone

    shown = display_phone(sms_client.cellphone)
    assert f"Cellphone: {shown}" in page and f'<strong id="preview-number">{shown}</strong>' in page
    assert sms_client.cellphone not in page


def test_email_credits_show_counts_with_separators(client, entity, operator):
    # The email credits screen read "5000" where the SMS one reads "4,967".
    credits_assign(actor=operator, entity=entity, channel="email", amount=5000)
    setup = factories.make_user(entity=entity, rights=[Right.MAXMAIL_GENERAL_SETUP])
    login(client, setup)
    page = client.get(reverse("web:messaging_email_credits")).content.decode()
    assert '<td class="num">5,000</td>' in page and ">5000<" not in page
