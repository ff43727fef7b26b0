"""The mobile-money screens: provider setup keeps secrets out of pages and audit, the suspense
queue is allocated by a person (audited, receipt and SMS), rights and query counts are pinned."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from imali.core.models import AuditEntry
from imali.loans.models import Receipt
from imali.messaging.models import OutboxMessage
from imali.mobilemoney.models import ProviderSetup, ProviderTransaction, TransactionStatus
from imali.mobilemoney.services import PaymentIn, payment_in_record
from imali.tenancy.rights import Right
from tests import factories

from .conftest import open_loan

pytestmark = pytest.mark.django_db

SECRET = "very-secret-consumer-value"


@pytest.fixture
def signed_in(client, lender_user):
    client.force_login(lender_user)
    return client


def _setup(signed_in):
    response = signed_in.post(reverse("web:mm_setup_create"), {
        "provider": "mpesa", "is_active": "on", "base_url": "http://127.0.0.1:8051", "short_code": "600999",
        "consumer_key": "key", "consumer_secret": SECRET, "security_credential": "cred-secret",
        "initiator_name": "init", "callback_base_url": "http://127.0.0.1:8000/"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return ProviderSetup.objects.get(short_code="600999")


def test_setup_secrets_are_kept_and_never_shown_back(signed_in):
    setup = _setup(signed_in)
    assert setup.consumer_secret == SECRET
    for url in (reverse("web:mm_setups"), reverse("web:mm_setup_edit", kwargs={"providersetup_id": setup.pk})):
        page = signed_in.get(url).content.decode()
        assert SECRET not in page and "cred-secret" not in page
    # Saving the form with the secret left blank keeps it.
    response = signed_in.post(reverse("web:mm_setup_edit", kwargs={"providersetup_id": setup.pk}), {
        "is_active": "on", "base_url": "http://127.0.0.1:8051", "short_code": "600999", "consumer_key": "key2",
        "callback_base_url": "http://127.0.0.1:8000/"})
    assert response.status_code == 302
    setup.refresh_from_db()
    assert setup.consumer_secret == SECRET and setup.consumer_key == "key2"
    entries = list(AuditEntry.objects.filter(action="mobilemoney.setup_changed").values_list("before", "after"))
    assert entries and all(SECRET not in str(e) for e in entries)


def test_setup_needs_its_right(client, entity):
    user = factories.make_user(entity=entity, rights=[Right.CAPTURE_RECEIPTS])
    client.force_login(user)
    assert client.get(reverse("web:mm_setups")).status_code == 403
    assert client.get(reverse("web:mm_suspense")).status_code == 200


def test_setup_form_names_the_missing_field(signed_in):
    response = signed_in.post(reverse("web:mm_setup_create"), {
        "provider": "mpesa", "base_url": "http://127.0.0.1:8051", "consumer_key": "k", "consumer_secret": "s",
        "callback_base_url": "http://127.0.0.1:8000/"})
    assert response.status_code == 400
    assert "M-PESA needs the paybill short code." in response.content.decode()


def test_suspense_is_allocated_by_a_person_with_receipt_sms_and_audit(signed_in, entity, lender_user,
                                                                      django_assert_max_num_queries):
    setup = _setup(signed_in)
    loan = open_loan(entity, lender_user)
    now = timezone.now()
    for i in range(5):
        payment_in_record(setup=setup, source="callback", payment=PaymentIn(
            provider_transaction_id=f"SUSP{i:06d}", amount=Decimal("20.00"), transacted_at=now, account_reference="?"))
    with django_assert_max_num_queries(15):
        page = signed_in.get(reverse("web:mm_suspense"))
    assert page.status_code == 200 and "SUSP000004" in page.content.decode()
    txn = ProviderTransaction.objects.get(provider_transaction_id="SUSP000001")
    url = reverse("web:mm_allocate", kwargs={"providertransaction_id": txn.pk})
    bad = signed_in.post(url, {"loan_reference": "L999999"})
    assert "No such loan" in bad.content.decode()
    for unusable in ("L\u00b2", "\u0661\u0662", "9" * 19):  # pass str.isdigit(), not int() or the column
        bad = signed_in.post(url, {"loan_reference": unusable})
        assert bad.status_code == 400 and "Loan number: give the loan number in the digits 0-9" in bad.content.decode()
    response = signed_in.post(url, {"loan_reference": f"L{loan.pk}"})
    assert response.status_code == 302
    txn.refresh_from_db()
    assert txn.status == TransactionStatus.ALLOCATED and txn.allocated_by == lender_user
    receipt = Receipt.objects.get(external_reference="SUSP000001")
    assert receipt.loan_id == loan.pk and receipt.captured_by == lender_user
    assert OutboxMessage.objects.filter(client=loan.client, message_type="payment_received").count() == 1
    assert AuditEntry.objects.filter(action="mobilemoney.payment_allocated", subject="SUSP000001", actor=lender_user).exists()
    # A second allocation of the same payment is refused.
    again = signed_in.post(url, {"loan_reference": f"L{loan.pk}"})
    assert again.status_code == 400 and Receipt.objects.filter(external_reference="SUSP000001").count() == 1
    with django_assert_max_num_queries(15):
        assert signed_in.get(reverse("web:mm_transactions")).status_code == 200


def test_payment_dated_before_the_loan_stays_in_suspense_with_the_reason(entity, lender_user, signed_in):
    setup = _setup(signed_in)
    loan = open_loan(entity, lender_user)
    txn, created = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="EARLY00001", amount=Decimal("20.00"), account_reference=f"L{loan.pk}",
        transacted_at=timezone.now() - dt.timedelta(days=30)))
    assert created and txn.status == TransactionStatus.SUSPENSE
    assert "paid out on" in txn.suspense_reason


def test_disbursement_page_shows_each_loans_payout_wallet_or_how_to_add_one(signed_in, entity, lender_user,
                                                                           django_assert_max_num_queries):
    from imali.mobilemoney import disbursements

    from .test_disbursements import approved_loan

    _setup(signed_in)
    with_wallet = approved_loan(entity, lender_user, cellphone="0821234567", wallet="0827654321")
    without = approved_loan(entity, lender_user, cellphone="0821234568", wallet="0821234568")
    without.client.accounts.update(is_active=False)
    with django_assert_max_num_queries(12):  # one read of the loans with their wallets, however many
        page = signed_in.get(reverse("web:mm_disbursements")).content.decode()
    row_with = page[page.index(f">{with_wallet.pk}</a>"):]
    row_with = row_with[:row_with.index("</tr>")]
    assert "082 765 4321" in row_with  # the wallet number as people read it
    assert "Make mobile disbursement" in row_with
    row_without = page[page.index(f">{without.pk}</a>"):]
    row_without = row_without[:row_without.index("</tr>")]
    assert "add a payout wallet" in row_without and "Make mobile disbursement" not in row_without
    assert reverse("web:client_account_create", kwargs={"client_id": without.client_id}) in row_without
    # Posting anyway (an old page) names the loan and the client, and says what to do.
    response = signed_in.post(reverse("web:mm_disbursement_mark", kwargs={"loan_id": without.pk}), follow=True)
    text = response.content.decode()
    assert f"Loan {without.pk}: client" in text and "Add a wallet account for payouts" in text
    assert not disbursements.Disbursement.objects.filter(loan=without).exists()


def test_the_sent_list_updates_itself_while_a_payment_waits_for_the_provider(signed_in, entity, lender_user):
    # After "Send mobile payments" the row said "Sent, awaiting the provider" until the user
    # reloaded; the confirmation number came in meanwhile. The list now asks again by itself while
    # a row waits, and stops once every answer is in.
    from imali.mobilemoney import disbursements
    from imali.mobilemoney.models import DisbursementStatus

    from .test_disbursements import approved_loan

    _setup(signed_in)
    loan = approved_loan(entity, lender_user)
    sent = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    type(sent).objects.filter(pk=sent.pk).update(status=DisbursementStatus.SENT, sent_at=timezone.now())
    url = reverse("web:mm_disbursements")
    page = signed_in.get(url).content.decode()
    sent_list = page[page.index('id="mm-sent"'):]
    assert 'data-polling="yes"' in sent_list[:300] and f'hx-get="{url}"' in sent_list[:300]
    # What the poll fetches carries the answer once it is in, and no further poll.
    type(sent).objects.filter(pk=sent.pk).update(status=DisbursementStatus.SUCCESSFUL, confirmation_number="SXIB707ZDL",
                                                 completed_at=timezone.now())
    page = signed_in.get(url, HTTP_HX_REQUEST="true").content.decode()
    sent_list = page[page.index('id="mm-sent"'):]
    assert "SXIB707ZDL" in sent_list and "Payment made" in sent_list and "data-polling" not in sent_list[:300]
