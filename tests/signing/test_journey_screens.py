"""What staff see around signing (issue 10 §5): loans awaiting signature, the signed state on the
loan and client pages, the client's history, times in the entity's zone, people words in the
OTP audit, the loan OTP text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from imali.loans.models import LoanStatus
from imali.loans.services import loan_approve, loan_disburse
from imali.signing import selectors, services

from .conftest import code_sent, make_application, make_borrower

pytestmark = pytest.mark.django_db


def _disburse(loan, user, on=dt.date(2026, 11, 3)):
    user.disbursement_limit = Decimal("100000")
    user.save(update_fields=["disbursement_limit"])
    loan_approve(loan=loan, actor=user)
    loan.refresh_from_db()
    return loan_disburse(loan=loan, actor=user, payout_account=loan.client.accounts.first(), disbursed_on=on)


def _enrol(entity, user, client):
    challenge = services.enrolment_send(actor=user, entity=entity, client=client)
    return services.enrolment_verify(actor=user, entity=entity, client=client, challenge_id=challenge.public_id,
                                     code=code_sent(challenge))


def test_loans_awaiting_signature_lists_only_loans_that_can_still_be_signed(client, setup, admin, officer):
    entity = setup.entity
    waiting = make_application(entity, user=officer, client=make_borrower(entity))
    approved = make_application(entity, user=officer, client=make_borrower(entity, cellphone="0821110003",
                                                                              id_number="8001015009087", date_of_birth=dt.date(1980, 1, 1)))
    loan_approve(loan=approved, actor=admin)
    # Below the Loan OTP amount: signed on paper, paid out without a signature record.
    paid_out = _disburse(make_application(entity, user=officer, principal="800",
                                          client=make_borrower(entity, cellphone="0821110004", id_number="9202204720083",
                                                             date_of_birth=dt.date(1992, 2, 20), gender="F")),
                         admin)
    assert paid_out.status == LoanStatus.ACTIVE

    listed = {loan.pk for loan in selectors.loans_awaiting_signature(entity=entity)}
    assert listed == {waiting.pk, approved.pk}
    client.force_login(officer)
    page = client.get(reverse("web:signing_loans")).content.decode()
    assert reverse("web:signing_loan", kwargs={"loan_id": waiting.pk}) in page
    assert reverse("web:signing_loan", kwargs={"loan_id": paid_out.pk}) not in page
    # And its signing screen no longer offers to sign it.
    signing_page = client.get(reverse("web:signing_loan", kwargs={"loan_id": paid_out.pk})).content.decode()
    assert "paid out already" in signing_page and 'id="finish-by-hand"' not in signing_page
