"""Disbursement waits for the signed agreement where the entity's Loan OTP setup applies to the
loan (Loan OTP or eSign Loan OTP on, amount at or above the Loan OTP amount, cellphone enrolled);
without it a loan is paid out as before."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from imali.loans import services
from imali.loans.models import Instalment, LoanStatus
from imali.messaging.credits import credits_assign
from imali.signing import services as signing
from imali.signing.testing import code_from_outbox
from tests.loans.conftest import make_borrower, make_product

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 2)


@pytest.fixture
def funded(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=200)
    return entity


def otp_on(entity, actor, **switches):
    return signing.otp_setup_update(actor=actor, entity=entity, data={"enrol_client": True, "threshold": "1000", **switches})


def enrolled_borrower(entity, actor):
    client, account = make_borrower(entity)
    challenge = signing.enrolment_send(actor=actor, entity=entity, client=client)
    signing.enrolment_verify(actor=actor, entity=entity, client=client, challenge_id=challenge.public_id,
                             code=code_from_outbox(challenge))
    return client, account


def approved(entity, actor, client, principal="3000"):
    loan = services.loan_apply(entity=entity, actor=actor, client=client, product=make_product(entity, name=f"ST {client.pk}"),
                               principal=principal, instalments=3, applied_on=DAY)
    return services.loan_approve(loan=loan, actor=actor)


def sign_by_otp(entity, actor, loan):
    document = signing.Document(loan=loan)
    challenge = signing.document_otp_send(actor=actor, entity=entity, document=document)
    signing.document_otp_verify(actor=actor, entity=entity, document=document, challenge_id=challenge.public_id,
                                code=code_from_outbox(challenge))


def test_without_an_otp_setup_a_loan_is_disbursed_as_before(funded, lender):
    client, account = make_borrower(funded)
    loan = approved(funded, lender, client)
    loan = services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY)
    assert loan.status == LoanStatus.ACTIVE


def test_loan_otp_refuses_an_unsigned_loan_of_an_enrolled_client_and_allows_it_once_signed(funded, lender):
    otp_on(funded, lender, loan_otp=True)
    client, account = enrolled_borrower(funded, lender)
    loan = approved(funded, lender, client)
    with pytest.raises(ValidationError) as caught:
        services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY)
    error = caught.value.error_dict["signature"][0]
    assert error.code == "not_signed"
    assert f"Loan {loan.pk}'s agreement is not signed yet" in error.message and "OTP" in error.message
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED and not Instalment.objects.filter(loan=loan).exists()

    sign_by_otp(funded, lender, loan)
    loan = services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY)
    assert loan.status == LoanStatus.ACTIVE


@pytest.mark.parametrize("case", ["below_threshold", "not_enrolled"])
def test_loan_otp_does_not_apply_below_the_amount_or_without_enrolment(funded, lender, case):
    otp_on(funded, lender, loan_otp=True)
    if case == "below_threshold":
        client, account = enrolled_borrower(funded, lender)
        loan = approved(funded, lender, client, principal="999.99")
    else:
        client, account = make_borrower(funded)
        loan = approved(funded, lender, client)
    assert services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY).status == LoanStatus.ACTIVE


def test_esign_loan_otp_needs_the_otp_or_a_declined_otp_flagged_for_hand_signature(funded, lender):
    otp_on(funded, lender, esign_loan_otp=True)
    client, account = enrolled_borrower(funded, lender)
    loan = approved(funded, lender, client)
    with pytest.raises(ValidationError) as caught:
        services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY)
    assert caught.value.error_dict["signature"][0].code == "not_signed"
    signing.document_hand_sign(actor=lender, entity=funded, document=signing.Document(loan=loan))
    assert services.loan_disburse(loan=loan, actor=lender, payout_account=account, disbursed_on=DAY).status == LoanStatus.ACTIVE


def test_disburse_screen_and_api_say_why_and_link_to_signing(client, funded, lender):
    otp_on(funded, lender, loan_otp=True)
    borrower, account = enrolled_borrower(funded, lender)
    loan = approved(funded, lender, borrower)
    signing_url = reverse("web:signing_loan", kwargs={"loan_id": loan.pk})
    client.force_login(lender)
    detail = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert "not signed yet" in detail and signing_url in detail
    disburse_url = reverse("web:loan_disburse", kwargs={"loan_id": loan.pk})
    page = client.get(disburse_url).content.decode()
    assert f"Loan {loan.pk}&#x27;s agreement is not signed yet" in page and signing_url in page
    r = client.post(disburse_url, {"payout_account": account.pk, "disbursed_on": DAY.isoformat()})
    assert r.status_code == 400 and "Signature: Loan" in r.content.decode()

    api = APIClient()
    api.force_login(lender)
    r = api.post(f"/api/loans/{loan.pk}/disburse/", {"payout_account": account.pk, "disbursed_on": DAY.isoformat()}, format="json")
    assert r.status_code == 400 and "not signed yet" in r.json()["signature"][0]

    sign_by_otp(funded, lender, loan)
    page = client.get(disburse_url).content.decode()
    assert "not signed yet" not in page
    r = api.post(f"/api/loans/{loan.pk}/disburse/", {"payout_account": account.pk, "disbursed_on": DAY.isoformat()}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "active" and D(r.json()["total_repayable"]) > D("3000")
