"""The SMS-banking screens and the branch manager's phone pages: rights, entity isolation,
audit, sizes, query counts."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.urls import reverse

from imali.core.models import AuditEntry
from imali.loans import services as loans
from imali.loans.models import Loan, LoanStatus, Receipt
from imali.messaging.inbound import inbound_receive
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import BankingPin, CollectionSheet, CollectionStatus, FieldCollection
from imali.tenancy.rights import Right
from tests import factories

from .conftest import OFFICER_PHONE, make_client

_ids = itertools.count(1)


def mo(number, text):
    inbound_receive(gateway="web", provider_id=f"w{next(_ids)}", number=number, text=text, to_address="Imali")
    answer_pending()


@pytest.fixture
def signed_in(client, manager):
    client.force_login(manager)
    return client


@pytest.mark.parametrize("name", ["smsbank_settings", "smsbank_pin", "smsbank_collections", "smsbank_sheets",
                                  "smsbank_requests", "mobile_home", "mobile_applications", "mobile_collections"])
def test_screens_open_and_sit_in_the_menu(signed_in, borrower, name):
    response = signed_in.get(reverse(f"web:{name}"))
    assert response.status_code == 200
    home = signed_in.get(reverse("web:home")).content.decode()
    if not name.startswith("mobile_") or name == "mobile_home":
        assert reverse(f"web:{name}") in home


def test_screens_need_their_right(client, bank):
    clerk = factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS])
    client.force_login(clerk)
    for name in ("smsbank_settings", "smsbank_pin", "smsbank_collections", "smsbank_sheets", "mobile_home"):
        assert client.get(reverse(f"web:{name}")).status_code == 403


def test_pin_set_at_the_branch(signed_in, borrower):
    url = reverse("web:smsbank_pin")
    response = signed_in.post(url, {"client_number": borrower.number, "pin": "1234", "repeat": "1234"})
    assert "run of digits" in response.content.decode() and not BankingPin.objects.exists()
    response = signed_in.post(url, {"client_number": borrower.number, "pin": "4826", "repeat": "4827"})
    assert "The two PINs differ" in response.content.decode()
    response = signed_in.post(url, {"client_number": borrower.number, "pin": "4826", "repeat": "4826"})
    assert response.status_code == 302 and BankingPin.objects.get(client=borrower).set_via == "branch"
    assert AuditEntry.objects.filter(action="smsbanking.pin_set").exists()


def test_pins_are_hidden_from_error_reports(signed_in, bank, manager, borrower, other_entity):
    import sys

    from django.core.exceptions import PermissionDenied
    from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

    from imali.smsbanking import services

    response = signed_in.post(reverse("web:smsbank_pin"), {"client_number": borrower.number, "pin": "4826", "repeat": "4826"})
    report = SafeExceptionReporterFilter()
    posted = report.get_post_parameters(response.wsgi_request)
    assert posted["pin"] == report.cleansed_substitute and posted["repeat"] == report.cleansed_substitute
    stranger = factories.make_client(entity=other_entity)
    try:
        services.pin_set(actor=manager, entity=bank, client=stranger, pin="4826", repeat="4826")
    except PermissionDenied:
        frames = ExceptionReporter(None, *sys.exc_info()).get_traceback_frames()
    assert "4826" not in repr([f["vars"] for f in frames])


def test_confirm_and_reject_on_the_collections_screen(signed_in, officer, borrower, django_assert_max_num_queries):
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    mo(OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} 120, {borrower.number}/{loan_ids[1]} 30")
    first, second = FieldCollection.objects.order_by("id")
    with django_assert_max_num_queries(12):
        page = signed_in.get(reverse("web:smsbank_collections")).content.decode()
    assert "120.00" in page and "30.00" in page
    signed_in.post(reverse("web:smsbank_collection_confirm", args=[first.pk]))
    signed_in.post(reverse("web:smsbank_collection_reject", args=[second.pk]), {"reason": "Short by 30"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == CollectionStatus.CONFIRMED and Receipt.objects.get(pk=first.receipt_id).amount == first.amount
    assert second.status == CollectionStatus.REJECTED and second.reject_reason == "Short by 30"


def test_collections_list_query_count_does_not_grow(signed_in, officer, borrower, django_assert_max_num_queries):
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    for amount in range(1, 9):
        mo(OFFICER_PHONE, f"PAY {borrower.number}/{loan_ids[0]} {amount}")
    assert FieldCollection.objects.count() == 8
    with django_assert_max_num_queries(12):
        assert signed_in.get(reverse("web:smsbank_collections")).status_code == 200


def test_sheet_made_on_the_screen_and_printable(signed_in, officer, borrower):
    due_by = (dt.date.today() + dt.timedelta(days=40)).isoformat()
    response = signed_in.post(reverse("web:smsbank_sheets"), {"officer": officer.pk, "due_by": due_by})
    sheet = CollectionSheet.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("web:smsbank_sheet", args=[sheet.pk])
    page = signed_in.get(response["Location"]).content.decode()
    assert sheet.code in page and str(borrower.number) in page
    assert AuditEntry.objects.filter(action="smsbanking.sheet_issued").exists()


@pytest.mark.parametrize("value", ["abc", "1e3", "²", "99999999999999999999999", "١", "１"])
def test_sheet_preview_with_a_bad_officer_is_a_400_naming_it(signed_in, officer, borrower, value):
    response = signed_in.get(reverse("web:smsbank_sheets"), {"officer": value})
    assert response.status_code == 400 and "officer" in response.content.decode()


def test_sheet_preview_of_no_such_officer_shows_none(signed_in, officer, borrower):
    response = signed_in.get(reverse("web:smsbank_sheets"), {"officer": "999999999"})
    assert response.status_code == 200 and response.context["preview"] is None


def test_sheet_preview_for_an_officer(signed_in, officer, borrower):
    response = signed_in.get(reverse("web:smsbank_sheets"), {"officer": str(officer.pk)})
    assert response.status_code == 200 and response.context["preview"]["officer"] == officer


def test_phone_pages_approve_and_decline_with_the_loans_services(signed_in, bank, manager, product):
    applicant = make_client(bank, cellphone="+27825550111")
    apply = lambda: loans.loan_apply(entity=bank, actor=manager, client=applicant, product=product,  # noqa: E731
                                     principal="1500", instalments=3, applied_on=loans.local_today(bank))
    first, second = apply(), apply()
    listing = signed_in.get(reverse("web:mobile_applications"))
    assert len(listing.content) < 100_000 and reverse("web:mobile_application", args=[first.pk]) in listing.content.decode()
    page = signed_in.get(reverse("web:mobile_application", args=[first.pk]))
    assert len(page.content) < 100_000 and b"Approve" in page.content
    signed_in.post(reverse("web:mobile_application", args=[first.pk]), {"action": "approve"})
    response = signed_in.post(reverse("web:mobile_application", args=[second.pk]), {"action": "decline", "reason": ""})
    assert "required" in response.content.decode().lower()
    signed_in.post(reverse("web:mobile_application", args=[second.pk]), {"action": "decline", "reason": "Income too low"})
    assert Loan.objects.get(pk=first.pk).status == LoanStatus.APPROVED
    declined = Loan.objects.get(pk=second.pk)
    assert declined.status == LoanStatus.CANCELLED and declined.status_reason == "Income too low"
    assert AuditEntry.objects.filter(action="loan.approved", object_id=str(first.pk)).exists()


def test_phone_home_shows_todays_branch_status(signed_in, borrower):
    page = signed_in.get(reverse("web:mobile_home"))
    text = page.content.decode()
    assert len(page.content) < 100_000 and "Disbursed" in text and "In arrears" in text and "SMS sent today" in text


def test_payment_notice_confirmed_and_rejected_on_the_collections_screen(signed_in, bank, manager, officer, product):
    from imali.smsbanking import services
    from imali.smsbanking.models import ProviderPayment

    from .conftest import make_loan

    payer = make_client(bank, cellphone="+27825550166", name="Palesa", salesperson=officer,
                        id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    make_loan(entity=bank, actor=manager, client=payer, product=product, principal="2000", days_ago=40)
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    for ref in ("GC100001", "GC100002"):
        mo("2882", f"You have received PHP 75.00 from {payer.cellphone}. Ref: {ref}")
    first, second = ProviderPayment.objects.order_by("id")
    assert not Receipt.objects.exists()
    page = signed_in.get(reverse("web:smsbank_collections")).content.decode()
    assert "GC100001" in page and "GC100002" in page
    signed_in.post(reverse("web:smsbank_payment_confirm", args=[first.pk]))
    signed_in.post(reverse("web:smsbank_payment_reject", args=[second.pk]), {"reason": "Not on the statement"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == CollectionStatus.CONFIRMED and Receipt.objects.get(pk=first.receipt_id).amount == first.amount
    assert second.status == CollectionStatus.REJECTED and second.reject_reason == "Not on the statement"
    assert Receipt.objects.count() == 1
    assert signed_in.post(reverse("web:smsbank_payment_confirm", args=[999999])).status_code == 404


def test_another_entitys_collection_is_not_found(signed_in, other_entity):
    other_admin = factories.make_admin(entity=other_entity)
    assert signed_in.post(reverse("web:smsbank_collection_confirm", args=[999999])).status_code == 404
    assert other_admin.entity_id != signed_in.get(reverse("web:mobile_home")).wsgi_request.entity.pk


def test_request_log_and_sheet_list_query_counts_do_not_grow(signed_in, bank, manager, officer, borrower,
                                                             django_assert_max_num_queries):
    from imali.smsbanking import services

    for n in range(6):
        mo(f"+2782555{n:04d}", "HELP")
    for _ in range(3):
        services.sheet_issue(actor=manager, entity=bank, officer=officer, due_by=dt.date.today() + dt.timedelta(days=40))
    with django_assert_max_num_queries(10):
        page = signed_in.get(reverse("web:smsbank_requests")).content.decode()
    assert page.count("BALANCE for your loans") == 6
    with django_assert_max_num_queries(12):
        page = signed_in.get(reverse("web:smsbank_sheets")).content.decode()
    assert all(s.code in page for s in CollectionSheet.objects.all())


def test_payment_notices_on_the_phone_page(signed_in, bank, manager, officer, product):
    """/m/collections lists the notices waiting, with confirm and reject through the desktop's
    services and rights, and comes back to the phone page."""
    from imali.smsbanking import services
    from imali.smsbanking.models import ProviderPayment

    from .conftest import make_loan

    payer = make_client(bank, cellphone="+27825550166", name="Palesa", salesperson=officer,
                        id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    make_loan(entity=bank, actor=manager, client=payer, product=product, principal="2000", days_ago=40)
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    for ref in ("GC300001", "GC300002"):
        mo("2882", f"You have received PHP 75.00 from {payer.cellphone}. Ref: {ref}")
    first, second = ProviderPayment.objects.order_by("id")
    page = signed_in.get(reverse("web:mobile_collections")).content.decode()
    assert "GC300001" in page and "GC300002" in page and "On the statement: confirm" in page and len(page) < 100_000
    response = signed_in.post(reverse("web:smsbank_payment_confirm", args=[first.pk]), {"back": "m"})
    assert response.status_code == 302 and response.url == reverse("web:mobile_collections")
    response = signed_in.post(reverse("web:smsbank_payment_reject", args=[second.pk]), {"back": "m", "reason": ""})
    assert response.url == reverse("web:mobile_collections")
    second.refresh_from_db()
    assert second.status == CollectionStatus.UNVERIFIED  # a reason is required
    signed_in.post(reverse("web:smsbank_payment_reject", args=[second.pk]), {"back": "m", "reason": "Not on the statement"})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == CollectionStatus.CONFIRMED and Receipt.objects.filter(pk=first.receipt_id).exists()
    assert second.status == CollectionStatus.REJECTED
    assert AuditEntry.objects.filter(action="smsbanking.provider_payment_confirmed").count() == 1
    page = signed_in.get(reverse("web:mobile_collections")).content.decode()
    assert "ref GC300001" not in page and "No notices waiting." in page
    # A user without 'Receipts: capture' cannot confirm from the phone either.
    clerk = factories.make_user(entity=bank, rights=[Right.APPROVE_LOANS])
    signed_in.force_login(clerk)
    assert signed_in.get(reverse("web:mobile_collections")).status_code == 403


def test_phone_page_notices_are_the_home_branchs(signed_in, bank, manager, officer):
    from imali.smsbanking import services
    from imali.tenancy.models import Branch

    elsewhere = Branch.objects.create(entity=bank, code="EL", name="Elsewhere", telephone="0110000001")
    theirs = make_client(bank, cellphone="+27825550188", name="Far", branch=elsewhere,
                         id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    provider = services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882",
                                      pattern=services.SAMPLE_PATTERN)
    services.provider_payment_record(entity=bank, provider=provider, phone=theirs.cellphone, amount=Decimal("10.00"),
                                     reference="FAR0001")
    services.provider_payment_record(entity=bank, provider=provider, phone="+27820009999", amount=Decimal("10.00"),
                                     reference="NOBODY01")
    manager.home_branch = bank.branches.exclude(pk=elsewhere.pk).first()
    manager.save()
    page = signed_in.get(reverse("web:mobile_collections")).content.decode()
    assert "FAR0001" not in page and "NOBODY01" in page


@pytest.mark.parametrize("name", ["smsbank_collections", "mobile_collections"])
def test_a_field_collection_names_its_client_once(signed_in, officer, borrower, name):
    # The client's name already carries the client number ("9 Pravin Venter"); the screens put the
    # number in front again and read "9 9 Pravin Venter".
    loan_id = borrower.loans.values_list("pk", flat=True).first()
    mo(OFFICER_PHONE, f"PAY {borrower.number}/{loan_id} 120")
    page = signed_in.get(reverse(f"web:{name}")).content.decode()
    assert str(borrower) in page and f"{borrower.number} {borrower}" not in page
