"""Write-off and hand-over: only approvers see and use them; their screens say what happens and
show the loan's audit trail; the loan page then shows the reason and who did it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditAction, AuditEntry
from imali.loans.models import LoanStatus
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_loan

pytestmark = pytest.mark.django_db


def test_only_approvers_see_and_use_write_off_and_hand_over(client, entity, lender):
    loan = make_loan(entity, user=lender)
    detail = reverse("web:loan_detail", kwargs={"loan_id": loan.pk})
    write_off = reverse("web:loan_write_off", kwargs={"loan_id": loan.pk})
    hand_over = reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk})
    cashier = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.CAPTURE_RECEIPTS, Right.DISBURSE_LOANS])
    client.force_login(cashier)
    page = client.get(detail).content.decode()
    assert write_off not in page and hand_over not in page
    assert client.get(write_off).status_code == 403
    assert client.post(hand_over, {"reason": "x"}).status_code == 403
    api = APIClient()
    api.force_login(cashier)
    assert api.post(f"/api/loans/{loan.pk}/write-off/", {"reason": "x"}, format="json").status_code == 403
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE

    client.force_login(lender)
    page = client.get(detail).content.decode()
    assert write_off in page and hand_over in page


def test_closing_screens_show_the_effect_reason_and_audit_trail(client, entity, lender):
    loan = make_loan(entity, user=lender)
    client.force_login(lender)
    hand_over = reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk})
    page = client.get(hand_over).content.decode()
    assert "stays on the book" in page and "Audit trail" in page and "Loan disbursed" in page
    r = client.post(hand_over, {"reason": ""})
    assert r.status_code == 400 and "This field is required" in r.content.decode()
    assert client.post(hand_over, {"reason": "Passed to Acme Collections"}).status_code == 302

    write_off = reverse("web:loan_write_off", kwargs={"loan_id": loan.pk})
    page = client.get(write_off).content.decode()
    assert "leaves the book" in page and "Passed to Acme Collections" in page and "Loan handed over" in page
    assert client.post(write_off, {"reason": "Collector gave up"}).status_code == 302
    loan.refresh_from_db()
    assert loan.status == LoanStatus.WRITTEN_OFF and loan.status_reason == "Collector gave up"

    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert "Collector gave up" in page and "Loan written off" in page and str(lender) in page
    assert reverse("web:loan_write_off", kwargs={"loan_id": loan.pk}) not in page
    entry = AuditEntry.objects.get(action=AuditAction.LOAN_WRITTEN_OFF, object_id=str(loan.pk))
    assert entry.actor == lender and entry.after == {"status": "written_off", "reason": "Collector gave up"}
