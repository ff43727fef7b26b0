"""A loan number typed on the mobile-money screens (suspense allocation, MoMo request to pay) is
read by the shared core.forms.ascii_integer: 1234 or L1234 in ASCII digits. Any other shape —
Arabic-Indic or fullwidth digits, a sign, inner spaces, a number too long for the column — is a
400 with the form again and an error naming the loan number, and nothing is written."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from imali.loans.models import Receipt
from imali.mobilemoney.models import ProviderTransaction, TransactionStatus
from imali.mobilemoney.services import PaymentIn, payment_in_record, setup_save

from .conftest import open_loan

pytestmark = pytest.mark.django_db

FORMAT_ERROR = "Loan number: give the loan number in the digits 0-9, e.g. 1234 or L1234."
UNUSABLE = ["١٢٣", "１２３", "L١٢٣", "L１２３", "+5", "-5", "L-5", "L+5", "1 2", "L 12", "0", "L0", "12.0", "1e3",
            "²", "L", "9" * 19, "L" + "9" * 19, "0x1F"]


def _counts() -> dict[str, int]:
    return {m._meta.label: m._default_manager.count() for m in apps.get_models()
            if m._meta.app_label != "sessions" and m._meta.managed and not m._meta.proxy}


@pytest.fixture
def signed_in(client, lender_user):
    client.force_login(lender_user)
    return client


@pytest.fixture
def suspense(entity, lender_user):
    setup = setup_save(entity=entity, actor=lender_user, data={
        "provider": "mpesa", "is_active": True, "base_url": "http://127.0.0.1:8051", "short_code": "600999",
        "consumer_key": "key", "consumer_secret": "secret", "callback_base_url": "http://127.0.0.1:8000/"})
    txn, _ = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="SUSPNUM001", amount="20.00", transacted_at=timezone.now(), account_reference="?"))
    assert txn.status == TransactionStatus.SUSPENSE
    return txn


@pytest.mark.parametrize("typed", UNUSABLE)
def test_allocation_refuses_a_loan_number_in_another_shape(signed_in, entity, lender_user, suspense, typed):
    open_loan(entity, lender_user)
    url = reverse("web:mm_allocate", kwargs={"providertransaction_id": suspense.pk})
    before = _counts()
    response = signed_in.post(url, {"loan_reference": typed})
    assert response.status_code == 400
    assert response.context["form"].errors["loan_reference"] == [FORMAT_ERROR]
    assert FORMAT_ERROR in response.content.decode()
    assert _counts() == before
    suspense.refresh_from_db()
    assert suspense.status == TransactionStatus.SUSPENSE


def test_allocation_takes_the_number_with_or_without_l_and_spaces_around(signed_in, entity, lender_user, suspense):
    loan = open_loan(entity, lender_user)
    url = reverse("web:mm_allocate", kwargs={"providertransaction_id": suspense.pk})
    # Eighteen digits is a number of the right shape that names no loan: the loan's own error.
    far = signed_in.post(url, {"loan_reference": "9" * 18})
    assert far.status_code == 400 and far.context["form"].errors["loan_reference"] == ["No such loan in your entity."]
    response = signed_in.post(url, {"loan_reference": f"  l{loan.pk} "})
    assert response.status_code == 302
    suspense.refresh_from_db()
    assert suspense.status == TransactionStatus.ALLOCATED and suspense.loan_id == loan.pk
    assert Receipt.objects.filter(loan=loan, external_reference="SUSPNUM001").count() == 1


@pytest.fixture
def momo(entity, lender_user):
    return setup_save(entity=entity, actor=lender_user, data={
        "provider": "momo", "is_active": True, "base_url": "http://127.0.0.1:8052", "target_environment": "sandbox",
        "consumer_key": "api-user", "consumer_secret": "api-key", "subscription_key": "sub",
        "callback_base_url": "http://127.0.0.1:8000/"})


def test_request_to_pay_refuses_a_bad_loan_number_on_its_page_with_a_400(signed_in, entity, lender_user, momo):
    loan = open_loan(entity, lender_user)
    url = reverse("web:mm_request_to_pay")
    page = signed_in.get(url)  # the form's page: the payments-in list, as at web:mm_transactions
    assert page.status_code == 200 and not page.context["request_form"].is_bound
    before = _counts()
    for typed in ("١٢٣", "１２３", "-5", "+5", "1 2", "9" * 19):
        response = signed_in.post(url, {"loan_reference": typed, "amount": "10.00"})
        assert response.status_code == 400, typed
        assert response.context["request_form"].errors["loan_reference"] == [FORMAT_ERROR], typed
        assert FORMAT_ERROR in response.content.decode()
    unknown = signed_in.post(url, {"loan_reference": "9" * 18, "amount": "10.00"})
    assert unknown.status_code == 400
    assert unknown.context["request_form"].errors["loan_reference"] == ["No such loan in your entity."]
    blank = signed_in.post(url, {"loan_reference": f"L{loan.pk}", "amount": ""})
    assert blank.status_code == 400 and "amount" in blank.context["request_form"].errors
    assert _counts() == before
    assert not ProviderTransaction.objects.exists()
