"""A hostile tester's pass over SMS banking: inbound texts that are empty, blank, huge, with emoji,
NUL bytes or other scripts' digits; officers' messages with new lines and the same loan twice; a
phone shared by clients of two lenders; and the screens' and API's bad input, missing rights and
double submissions. Each bad input is a 4xx (or a reply naming the problem) and writes nothing."""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditEntry
from imali.loans import services as loans
from imali.loans.models import Loan, LoanStatus, Receipt
from imali.messaging.credits import credits_assign
from imali.messaging.inbound import inbound_receive
from imali.messaging.models import InboundMessage, OutboxMessage
from imali.smsbanking import services
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import (
    BankingPin,
    BankingRequest,
    BankingSettings,
    CollectionSheet,
    CollectionStatus,
    FieldCollection,
    KeywordAlias,
    PaymentProvider,
    ProviderPayment,
)
from imali.tenancy.rights import Right
from tests import factories

from .conftest import CLIENT_PHONE, OFFICER_PHONE, OTHER_PHONE, make_client, make_loan

_ids = itertools.count(1)


def mo(number, text, to="Imali"):
    message, created = inbound_receive(gateway="test", provider_id=f"h{next(_ids)}", number=number, text=text, to_address=to)
    assert created
    answer_pending()
    message.refresh_from_db()
    return message


def last_reply(number):
    return OutboxMessage.objects.filter(number=number).latest("id").text


def counts():
    return tuple(m.objects.count() for m in (BankingPin, BankingSettings, CollectionSheet, FieldCollection, KeywordAlias,
                                             PaymentProvider, ProviderPayment, Receipt, AuditEntry))


@pytest.fixture
def signed_in(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def payer(bank, manager, officer, product):
    """The officer's client with exactly one loan on the book."""
    client = make_client(bank, cellphone="+27825550177", name="Zanele", salesperson=officer,
                         id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    make_loan(entity=bank, actor=manager, client=client, product=product, principal="2000", days_ago=40)
    return client


# --- inbound texts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "", "   ", "\n\t", "x" * 2000, "BALANCE " + "9" * 2000, "😀😀 BALANCE", "BALANCE 😀", "PIN 😀 😀",
    "PAY " + "1001 1, " * 300, "١٢٣٤", "BALANCE ١٢ ٤٨٢٦", "BALANCE １ ４８２６", "BALANCE 1e10 4826",
])  # A NUL byte never reaches the engine on PostgreSQL: messaging's inbound store refuses it (see the report).
def test_odd_inbound_texts_are_answered_and_never_keep_a_pin(bank, borrower, officer, text):
    """From a stranger and from the officer: each is handled (logged, answered or refused by
    rule), none fails, and no stored text keeps the PIN."""
    stranger, staff = mo(OTHER_PHONE, text), mo(OFFICER_PHONE, text)
    assert InboundMessage.objects.filter(handled=True).count() == 2
    assert not BankingRequest.objects.filter(outcome="failed").exists()
    assert not FieldCollection.objects.exists()
    for message in (stranger, staff):
        assert "4826" not in message.text and "٤٨٢٦" not in message.text and "４８２６" not in message.text


def test_pay_entries_on_separate_lines_are_read_as_separate_payments(bank, officer, borrower, payer):
    """The documented grammar: entries separated by ',' ';' or a new line. A new line was lost when
    the message was split into words, so two lines read as one malformed entry."""
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    mo(OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} 10\n{payer.number} 20\r\n{borrower.number}/{loan_ids[1]} 5")
    assert sorted(FieldCollection.objects.values_list("amount", flat=True)) == [Decimal("5.00"), Decimal("10.00"),
                                                                                 Decimal("20.00")]
    assert "recorded 3 payments" in last_reply(OFFICER_PHONE)


def test_pay_confirmation_reads_without_a_double_space(bank, officer, payer):
    mo(OFFICER_PHONE, f"PAY {payer.number} 20")
    assert f"{bank.name}: recorded 1 payment, " in last_reply(OFFICER_PHONE)


def test_the_same_loan_twice_in_one_message_records_nothing(bank, officer, payer):
    """'1001 250, 1001/17 100' names loan 17 twice (once through the client's only loan): each
    entry alone fits the loan's receipt maximum, together they may not; the message is refused
    like '1001 250, 1001 100'."""
    loan = Loan.objects.get(client=payer)
    before = counts()
    mo(OFFICER_PHONE, f"PAY {payer.number} 10, {payer.number}/{loan.pk} 20")
    assert counts() == before
    assert "Nothing recorded" in last_reply(OFFICER_PHONE) and "twice" in last_reply(OFFICER_PHONE)


def test_the_same_loan_twice_cannot_exceed_the_loans_maximum_together(bank, manager, officer, payer):
    loan = Loan.objects.get(client=payer)
    from imali.loans import selectors as loan_selectors

    most = loan_selectors.loan_receipt_maximum(loan=loan, as_of=loans.local_today(bank)).amount
    half = (most / 2 + 1).quantize(Decimal("0.01"))
    mo(OFFICER_PHONE, f"PAY {payer.number} {half}, {payer.number}/{loan.pk} {half}")
    assert not FieldCollection.objects.exists()


def test_a_phone_shared_with_another_lenders_client_is_answered_by_the_lender_it_texted(bank, borrower, operator):
    """The number is also a (newer) client's of a second lender. A message sent to the first
    lender's service address is the first lender's: the second must not answer it with its own
    client's balance (a recycled number is another person)."""
    rival = factories.make_entity(country="ZA")
    credits_assign(actor=operator, entity=rival, channel="sms", amount=100)
    services.settings_update(actor=factories.make_admin(entity=rival), entity=rival,
                             data={"enabled": True, "service_address": "Rival"})
    theirs = factories.make_client(entity=rival, cellphone=CLIENT_PHONE, name="Somebody")
    mo(CLIENT_PHONE, "BALANCE", to="Imali")
    reply = OutboxMessage.objects.get(number=CLIENT_PHONE)
    assert reply.entity_id == bank.pk and reply.client_id == borrower.pk and "Loan " in reply.text
    assert BankingRequest.objects.get().entity_id == bank.pk
    # And the other way round: sent to the rival's address, the rival answers about its own client.
    mo(CLIENT_PHONE, "BALANCE", to="Rival")
    reply = OutboxMessage.objects.filter(number=CLIENT_PHONE).latest("id")
    assert reply.entity_id == rival.pk and reply.client_id == theirs.pk


def test_a_pin_after_help_start_or_stop_is_not_kept_in_clear(bank, borrower, caplog):
    """A client who half-remembers the words may send the PIN after any keyword."""
    caplog.set_level(logging.DEBUG)
    for text in ("HELP 1001 4826", "START 4826", "STOP 4826"):
        message = mo(OTHER_PHONE, text)
        assert "4826" not in message.text, text
    assert "4826" not in caplog.text


# --- screens and API -------------------------------------------------------------------------------

def test_declining_on_the_phone_page_without_the_right_is_403_and_changes_nothing(bank, manager, product, client):
    applicant = make_client(bank, cellphone="+27825550111")
    loan = loans.loan_apply(entity=bank, actor=manager, client=applicant, product=product, principal="1500",
                            instalments=3, applied_on=loans.local_today(bank))
    approver = factories.make_user(entity=bank, rights=[Right.APPROVE_LOANS])
    client.force_login(approver)
    before = counts()
    response = client.post(reverse("web:mobile_application", args=[loan.pk]), {"action": "decline", "reason": "No"})
    assert response.status_code == 403
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPLICATION and counts() == before


def test_phone_page_decline_with_a_huge_or_blank_reason_is_the_fields_error(signed_in, bank, manager, product):
    applicant = make_client(bank, cellphone="+27825550111")
    loan = loans.loan_apply(entity=bank, actor=manager, client=applicant, product=product, principal="1500",
                            instalments=3, applied_on=loans.local_today(bank))
    before = counts()
    for reason in ("x" * 1_000_000, "   ", "a\x00b"):
        response = signed_in.post(reverse("web:mobile_application", args=[loan.pk]), {"action": "decline", "reason": reason})
        assert response.status_code == 400 and response.context["decline_form"].errors["reason"]
    response = signed_in.post(reverse("web:mobile_application", args=[loan.pk]), {"action": "nonsense"})
    assert response.status_code == 200
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPLICATION and counts() == before


@pytest.mark.parametrize("reason", ["a\x00b", "x" * 201, "   ", ""])
def test_reject_reasons_are_checked_on_the_screen_and_by_the_api(signed_in, bank, manager, officer, borrower, reason):
    """The screen read the reason from the raw POST (bypassing its form), so a NUL byte was stored
    and sent to the officer by SMS."""
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    mo(OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} 10")
    row = FieldCollection.objects.get()
    before = counts()
    response = signed_in.post(reverse("web:smsbank_collection_reject", args=[row.pk]), {"reason": reason})
    assert response.status_code == 302
    shown = " ".join(str(m) for m in response.wsgi_request._messages)
    assert "reason" in shown.lower() or "say why" in shown.lower()
    api = APIClient()
    api.force_login(manager)
    response = api.post(f"/api/field-collections/{row.pk}/reject/", {"reason": reason}, format="json")
    assert response.status_code == 400 and "reason" in response.json()
    row.refresh_from_db()
    assert row.status == CollectionStatus.UNVERIFIED and counts() == before


def test_a_payment_notice_reject_reason_with_a_nul_byte_is_refused(signed_in, bank, manager, payer):
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    mo("2882", f"You have received PHP 75.00 from {payer.cellphone}. Ref: GC100001")
    notice = ProviderPayment.objects.get()
    before = counts()
    response = signed_in.post(reverse("web:smsbank_payment_reject", args=[notice.pk]), {"reason": "a\x00b"})
    assert response.status_code == 302 and "reason" in " ".join(str(m) for m in response.wsgi_request._messages).lower()
    notice.refresh_from_db()
    assert notice.status == CollectionStatus.UNVERIFIED and counts() == before


@pytest.mark.parametrize("due_by", ["0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31"])
def test_a_sheet_due_date_outside_1900_to_2100_is_the_fields_error(signed_in, bank, officer, borrower, due_by):
    before = counts()
    response = signed_in.post(reverse("web:smsbank_sheets"), {"officer": officer.pk, "due_by": due_by})
    assert response.status_code == 400 and "due_by" in response.context["form"].errors
    assert counts() == before


def test_a_double_confirm_posts_one_receipt(signed_in, bank, manager, officer, payer):
    mo(OFFICER_PHONE, f"PAY {payer.number} 10")
    row = FieldCollection.objects.get()
    signed_in.post(reverse("web:smsbank_collection_confirm", args=[row.pk]))
    again = signed_in.post(reverse("web:smsbank_collection_confirm", args=[row.pk]))
    assert "confirmed already" in " ".join(str(m) for m in again.wsgi_request._messages)
    api = APIClient()
    api.force_login(manager)
    response = api.post(f"/api/field-collections/{row.pk}/confirm/")
    assert response.status_code == 400 and "collection" in response.json()
    assert Receipt.objects.count() == 1
    assert AuditEntry.objects.filter(action="smsbanking.collection_confirmed").count() == 1


@pytest.mark.parametrize("data", [
    {"service_address": "Im\x00ali"}, {"service_address": "x" * 1_000_000}, {"service_address": "Ímali"},
    {"pin_max_failures": "١٢"}, {"pin_max_failures": "１２"}, {"pin_max_failures": "1e1"}, {"pin_max_failures": "3.0"},
    {"pin_max_failures": "0"}, {"pin_lock_minutes": "-1"}, {"requests_per_hour": ""}, {"sheet_code_days": "31"},
])
def test_settings_bad_values_are_the_fields_error(signed_in, bank, data):
    before = counts()
    base = {"pin_max_failures": 3, "pin_lock_minutes": 60, "requests_per_hour": 10, "sheet_code_days": 3, "enabled": "on"}
    response = signed_in.post(reverse("web:smsbank_settings"), {**base, **data})
    assert response.status_code == 400 and set(response.context["form"].errors) == set(data)
    assert counts() == before


@pytest.mark.parametrize("data", [
    {"pattern": "(?P<phone>a+)+(?P<amount>x)(?P<ref>y)"}, {"pattern": "x" * 1_000_000}, {"pattern": "("},
    {"pattern": "(?P<phone>x)"}, {"sender": "\x00"}, {"name": ""}, {"sender": "😀"},
])
def test_provider_bad_values_are_the_fields_error(signed_in, bank, data):
    before = counts()
    form = {"name": "G", "sender": "2882", "pattern": services.SAMPLE_PATTERN, "active": "on", **data}
    response = signed_in.post(reverse("web:smsbank_provider_create"), form)
    assert response.status_code == 400 and set(response.context["form"].errors) == set(data)
    assert counts() == before


@pytest.mark.parametrize(("pin", "repeat"), [("١٢٣٤", "١٢٣٤"), ("１２３４", "１２３４"), ("1234", "1234"), ("1111", "1111"),
                                             ("4826", "4827"), ("48261234", "48261234"), ("", ""), ("48\x0026", "48\x0026")])
def test_pin_screen_refuses_bad_pins_and_never_echoes_them(signed_in, bank, borrower, pin, repeat, caplog):
    caplog.set_level(logging.DEBUG)
    before = counts()
    response = signed_in.post(reverse("web:smsbank_pin"), {"client_number": borrower.number, "pin": pin, "repeat": repeat})
    assert response.status_code == 400 and response.context["form"].errors
    assert f'value="{pin}"' not in response.content.decode()
    assert counts() == before


def test_pin_api_refuses_bad_input_and_foreign_clients(bank, manager, borrower, other_entity):
    foreign = factories.make_client(entity=other_entity)
    api = APIClient()
    api.force_login(manager)
    before = counts()
    for body in ({"client": foreign.pk, "pin": "4826"}, {"client": borrower.pk, "pin": "١٢٣٤"}, {"client": borrower.pk, "pin": 482},
                 {"client": "١", "pin": "4826"}, {"client": borrower.pk, "pin": "1234"}, {"client": borrower.pk},
                 {"client": borrower.pk, "pin": "4" * 1_000_000}, {"client": borrower.pk, "pin": None}):
        response = api.post("/api/smsbanking/pins/", body, format="json")
        assert response.status_code == 400, body
        assert b"4826" not in response.content
    clerk = factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS])
    api.force_login(clerk)
    assert api.post("/api/smsbanking/pins/", {"client": borrower.pk, "pin": "4826"}, format="json").status_code == 403
    assert counts() == before


def test_decisions_need_the_right_on_screen_and_api(client, bank, officer, payer):
    mo(OFFICER_PHONE, f"PAY {payer.number} 10")
    row = FieldCollection.objects.get()
    clerk = factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS])
    client.force_login(clerk)
    api = APIClient()
    api.force_login(clerk)
    before = counts()
    assert client.post(reverse("web:smsbank_collection_confirm", args=[row.pk])).status_code == 403
    assert client.post(reverse("web:smsbank_collection_reject", args=[row.pk]), {"reason": "x"}).status_code == 403
    assert api.post(f"/api/field-collections/{row.pk}/confirm/").status_code == 403
    assert api.post(f"/api/field-collections/{row.pk}/reject/", {"reason": "x"}, format="json").status_code == 403
    for name in ("mobile_home", "mobile_collections", "mobile_applications", "smsbank_requests"):
        assert client.get(reverse(f"web:{name}")).status_code == 403
    assert counts() == before
