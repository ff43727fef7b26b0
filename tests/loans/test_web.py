"""Loan screens end to end through the Django test client, with rights."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse

from imali.core.models import AuditAction, AuditEntry
from imali.loans.models import Loan, LoanStatus, Product, Receipt
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_borrower, make_loan

pytestmark = pytest.mark.django_db


def test_product_application_approval_disbursement_receipt_reversal(client, entity, lender):
    client.force_login(lender)
    r = client.post(reverse("web:product_create"), {
        "name": "Payday 5", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
        "max_principal": "9000", "min_instalments": "1", "max_instalments": "6", "interest_rate_pm": "5",
        "charge_initiation_fee": "on", "service_fee_pm": "60", "vat_rate": "15", "is_active": "on"})
    assert r.status_code == 400 and "(Short-term credit: maximum principal)" in r.content.decode()
    r = client.post(reverse("web:product_create"), {
        "name": "Payday 5", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
        "max_principal": "8000", "min_instalments": "1", "max_instalments": "6", "interest_rate_pm": "5",
        "charge_initiation_fee": "on", "service_fee_pm": "60", "vat_rate": "15", "is_active": "on"})
    assert r.status_code == 302
    product = Product.objects.get(entity=entity, name="Payday 5")
    assert "Payday 5" in client.get(reverse("web:product_list")).content.decode()

    borrower, account = make_borrower(entity)
    r = client.post(reverse("web:loan_apply", kwargs={"client_id": borrower.pk}),
                    {"product": product.pk, "principal": "2000", "instalments": "3"})
    assert r.status_code == 302
    loan = Loan.objects.get(client=borrower)
    assert loan.status == LoanStatus.APPLICATION
    client.post(reverse("web:loan_approve", kwargs={"loan_id": loan.pk}))
    r = client.post(reverse("web:loan_disburse", kwargs={"loan_id": loan.pk}),
                    {"payout_account": account.pk, "disbursed_on": "2026-01-05"})
    assert r.status_code == 302
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE and loan.total_repayable == D("2715.00")
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert "2026-01-23" in page or "23 January 2026" in page or "Jan. 23, 2026" in page
    r = client.post(reverse("web:receipt_create", kwargs={"loan_id": loan.pk}),
                    {"amount": "905.01", "value_date": "2026-01-23", "payback_type": "debit_order", "external_reference": "DO-1"})
    assert r.status_code == 302
    r = client.post(reverse("web:receipt_create", kwargs={"loan_id": loan.pk}),
                    {"amount": "905.01", "value_date": "2026-01-23", "payback_type": "debit_order", "external_reference": "DO-1"})
    assert r.status_code == 400 and "has been posted already" in r.content.decode()
    receipt = Receipt.objects.get(loan=loan)
    r = client.post(reverse("web:receipt_reverse", kwargs={"receipt_id": receipt.pk}), {"reason": "Debit order returned"})
    assert r.status_code == 302
    receipt.refresh_from_db()
    assert receipt.is_reversed
    assert AuditEntry.objects.filter(action=AuditAction.RECEIPT_REVERSED, actor=lender).exists()
    pdf = client.get(reverse("web:client_statement", kwargs={"client_id": borrower.pk}))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_rights_guard_each_step(client, entity, lender):
    loan = make_loan(entity, user=lender)
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(viewer)
    assert client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).status_code == 200
    assert client.get(reverse("web:loan_list")).status_code == 200
    for name in ("receipt_create", "loan_disburse", "loan_cancel"):
        assert client.get(reverse(f"web:{name}", kwargs={"loan_id": loan.pk})).status_code == 403
    assert client.post(reverse("web:loan_approve", kwargs={"loan_id": loan.pk})).status_code == 403
    assert client.get(reverse("web:product_list")).status_code == 403
    assert client.get(reverse("web:loan_apply", kwargs={"client_id": loan.client_id})).status_code == 403


def test_disbursement_over_limit_shows_error(client, entity, lender):
    from imali.loans.services import loan_apply, loan_approve
    borrower, account = make_borrower(entity)
    product = make_loan(entity, user=lender).product
    loan = loan_apply(entity=entity, actor=lender, client=borrower, product=product, principal="3000", instalments=3)
    loan_approve(loan=loan, actor=lender)
    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.DISBURSE_LOANS])
    clerk.disbursement_limit = D("1000")
    clerk.save()
    client.force_login(clerk)
    r = client.post(reverse("web:loan_disburse", kwargs={"loan_id": loan.pk}),
                    {"payout_account": account.pk, "disbursed_on": dt.date(2026, 1, 5).isoformat()})
    assert r.status_code == 400 and "disbursement limit" in r.content.decode()
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED


def test_hand_over_then_write_off_screens(client, entity, lender):
    loan = make_loan(entity, user=lender)
    client.force_login(lender)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk}) in page
    r = client.post(reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk}), {"reason": ""})
    assert r.status_code == 400 and "reason" in r.context["form"].errors
    r = client.post(reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk}), {"reason": "No payment for 90 days"})
    assert r.status_code == 302
    loan.refresh_from_db()
    assert loan.status == LoanStatus.HANDED_OVER
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk}) not in page
    r = client.post(reverse("web:loan_write_off", kwargs={"loan_id": loan.pk}), {"reason": "Collector gave up"})
    assert r.status_code == 302
    loan.refresh_from_db()
    assert loan.status == LoanStatus.WRITTEN_OFF
    assert AuditEntry.objects.filter(entity=entity, action=AuditAction.LOAN_WRITTEN_OFF).count() == 1
    # Once written off, a hand-over is refused on the form, and a clerk without the right gets 403.
    r = client.post(reverse("web:loan_hand_over", kwargs={"loan_id": loan.pk}), {"reason": "again"})
    assert r.status_code == 400 and r.context["form"].errors
    other = make_loan(entity, user=lender)
    client.force_login(factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.CAPTURE_LOANS]))
    assert client.post(reverse("web:loan_write_off", kwargs={"loan_id": other.pk}), {"reason": "x"}).status_code == 403
    other.refresh_from_db()
    assert other.status == LoanStatus.ACTIVE


def test_loan_list_finds_by_client_and_status_and_pages(client, entity, other_entity, lender):
    client.force_login(lender)
    found, _ = make_borrower(entity, surname="Vilakazi")
    others = [make_borrower(entity)[0] for _ in range(2)]
    mine = make_loan(entity, user=lender, client=found, principal="1500", instalments=2)
    for borrower in others:
        for _ in range(26):
            make_loan(entity, user=lender, client=borrower, principal="1000", instalments=1)
    foreign, _ = make_borrower(other_entity)
    url = reverse("web:loan_list")

    page = client.get(url, {"q": str(found.number)}).content.decode()
    assert f'href="{reverse("web:loan_detail", kwargs={"loan_id": mine.pk})}"' in page and "1 loan<" in page
    page = client.get(url, {"q": "vilakazi"}).content.decode()
    assert f'loans/{mine.pk}/"' in page and "1 loan<" in page
    assert "No loans match." in client.get(url, {"q": str(foreign.number + 100000)}).content.decode()
    assert "No loans match." in client.get(url, {"q": "1", "status": "written_off"}).content.decode()

    everything = client.get(url).content.decode()
    assert "53 loans" in everything and "Page 1 of 2" in everything
    second = client.get(url, {"page": 2}).content.decode()
    assert f'loans/{mine.pk}/"' in second  # oldest last
    assert "Page 2 of 2" in second


def test_application_shows_every_error_at_once(client, entity, lender):
    client.force_login(lender)
    product = make_product_for_web(entity)
    borrower, _ = make_borrower(entity)
    url = reverse("web:loan_apply", kwargs={"client_id": borrower.pk})
    r = client.post(url, {"product": product.pk, "principal": "99999", "instalments": "", "pay_day": "40"})
    assert r.status_code == 400
    errors = r.context["form"].errors
    assert set(errors) == {"principal", "instalments", "pay_day"}, errors
    page = r.content.decode()
    assert "The product lends 500.00 to 8,000.00." in page and "This field is required." in page
    assert "The pay day must be 1 to 31" in page
    assert not Loan.objects.filter(client=borrower).exists()


def make_product_for_web(entity):
    from tests.loans.conftest import make_product

    return make_product(entity, name="Web product")


def test_a_client_in_arrears_is_shown_and_confirmed_at_application_approval_and_disbursement(client, entity, lender):
    # A loan paid out in January with nothing paid since: months in arrears, while the client's
    # status (moved only by the daily close) still says Good.
    old = make_loan(entity, user=lender)
    borrower = old.client
    assert borrower.status == "good" and borrower.new_loans_allowed
    client.force_login(lender)
    product = make_product_for_web(entity)
    url = reverse("web:loan_apply", kwargs={"client_id": borrower.pk})
    page = client.get(url).content.decode()
    assert 'id="client-standing"' in page and "The client is in arrears." in page
    assert "I have seen that the client is in arrears" in page
    data = {"product": product.pk, "principal": "1000", "instalments": "2"}
    r = client.post(url, data)
    assert r.status_code == 400 and "Tick the box to confirm" in r.content.decode()
    assert Loan.objects.filter(client=borrower).count() == 1
    r = client.post(url, {**data, "arrears_seen": "on"})
    assert r.status_code == 302
    loan = Loan.objects.filter(client=borrower).latest("pk")

    detail = reverse("web:loan_detail", kwargs={"loan_id": loan.pk})
    page = client.get(detail).content.decode()
    assert 'id="client-standing"' in page and 'name="arrears_seen"' in page
    refused = client.post(reverse("web:loan_approve", kwargs={"loan_id": loan.pk}))
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPLICATION
    # Refused: the loan's page again with the box's error beside it, a 400 (web.forms.form_status).
    assert refused.status_code == 400 and "Tick the box to confirm" in refused.content.decode()
    assert 'id="client-standing"' in refused.content.decode()
    client.post(reverse("web:loan_approve", kwargs={"loan_id": loan.pk}), {"arrears_seen": "on"})
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED

    disburse = reverse("web:loan_disburse", kwargs={"loan_id": loan.pk})
    assert "The client is in arrears." in client.get(disburse).content.decode()
    account = borrower.accounts.first()
    r = client.post(disburse, {"payout_account": account.pk, "disbursed_on": "2026-11-02"})
    assert r.status_code == 400 and "Tick the box to confirm" in r.content.decode()
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED
    r = client.post(disburse, {"payout_account": account.pk, "disbursed_on": "2026-11-02", "arrears_seen": "on"})
    assert r.status_code == 302
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE


def test_a_client_not_in_arrears_needs_no_confirmation(client, entity, lender):
    client.force_login(lender)
    borrower, _ = make_borrower(entity)
    page = client.get(reverse("web:loan_apply", kwargs={"client_id": borrower.pk})).content.decode()
    assert 'id="client-standing"' in page and "arrears_seen" not in page


def test_the_client_standing_shows_the_outstanding_balance_with_separators(client, entity, lender):
    # A client owing more than a thousand: the standing box reads "1,234.56" like every other
    # amount on the screens, not the bare Decimal "1234.56".
    old = make_loan(entity, user=lender, principal="4000", disbursed_on=dt.date(2026, 11, 2))
    client.force_login(lender)
    page = client.get(reverse("web:loan_apply", kwargs={"client_id": old.client.pk})).content.decode()
    shown = page.split('class="standing-outstanding">', 1)[1].split("</dd>", 1)[0]
    assert "," in shown and shown.replace(",", "").replace(".", "").isdigit()


def test_the_loan_audit_trail_names_the_record_and_status_in_words(client, entity, lender):
    # The trail on the loan's page said "loans.Loan 12" and "Status paid_up": the model's label and
    # the stored key. Staff read "Loan 12" and the status as the loan's own screens name it.
    loan = make_loan(entity, user=lender)
    client.force_login(lender)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    trail = page.split("<h2>Audit trail</h2>", 1)[1]
    assert f"<td>Loan {loan.pk}</td>" in trail and "loans.Loan" not in trail
    assert "Status Active" in trail and "Status active" not in trail


def test_an_unsigned_application_links_to_its_signing_from_the_loan_page(client, entity, lender):
    # The loan's page said "Agreement not signed electronically." and offered no way to sign: the
    # signing screen was reachable only from the list of agreements to sign.
    borrower, _ = make_borrower(entity)
    product = make_product_for_web(entity)
    client.force_login(lender)
    client.post(reverse("web:loan_apply", kwargs={"client_id": borrower.pk}),
                {"product": product.pk, "principal": "1000", "instalments": "2"})
    loan = Loan.objects.get(client=borrower)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert reverse("web:signing_loan", kwargs={"loan_id": loan.pk}) in page
    paid_out = make_loan(entity, user=lender)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": paid_out.pk})).content.decode()
    assert reverse("web:signing_loan", kwargs={"loan_id": paid_out.pk}) not in page
