"""Change available: overpayments paid back to the client, reversals of those refunds, and the
conservation of money across receipts, reversals and refunds (the snapshot's figure included)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditAction, AuditEntry
from imali.core.money import aggregate_money
from imali.loans import selectors, services
from imali.loans.models import ChangeRefund, Instalment, Loan, LoanStatus, Receipt
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_loan

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError, field: str) -> list[str]:
    return [e.code for e in exc.error_dict[field]]


def overpaid_loan(entity, user, *, overpay="300.00"):
    """Worked example 1's loan (R2,715.00 repayable) paid with `overpay` more than it owes."""
    loan = make_loan(entity, user=user)
    receipt = services.receipt_post(entity=entity, actor=user, loan=loan, amount=D("2715.00") + D(overpay),
                                    value_date=dt.date(2026, 2, 20), payback_type="eft", external_reference=f"OVER-{loan.pk}")
    loan.refresh_from_db()
    return loan, receipt


def test_refund_takes_change_off_the_loan_exactly_and_reversal_puts_it_back(entity, lender):
    loan, receipt = overpaid_loan(entity, lender)
    assert (loan.status, receipt.change, loan.change_total) == (LoanStatus.PAID_UP, D("300.00"), D("300.00"))

    refund = services.change_refund(entity=entity, actor=lender, loan=loan, amount="120.50", paid_on=dt.date(2026, 2, 21),
                                    method="eft", reference="PAY-1", reason="Client asked for the overpayment")
    loan.refresh_from_db()
    assert loan.change_total == D("179.50")
    entry = AuditEntry.objects.get(action=AuditAction.CHANGE_REFUNDED, object_id=str(refund.pk))
    assert entry.actor == lender and entry.before["change_available"] == "300.00" and entry.after["change_available"] == "179.50"

    with pytest.raises(ValidationError) as caught:
        services.change_refund(entity=entity, actor=lender, loan=loan, amount="179.51", paid_on=dt.date(2026, 2, 21),
                               method="cash", reason="Too much")
    assert codes(caught.value, "amount") == ["over_change_available"]
    assert "179.50" in caught.value.error_dict["amount"][0].message
    assert ChangeRefund.objects.filter(loan=loan).count() == 1

    services.change_refund(entity=entity, actor=lender, loan=loan, amount="179.50", paid_on=dt.date(2026, 2, 22),
                           method="cash", reason="The rest")
    loan.refresh_from_db()
    assert loan.change_total == D("0.00")

    services.change_refund_reverse(refund=refund, actor=lender, reason="Payment bounced")
    loan.refresh_from_db()
    refund.refresh_from_db()
    assert refund.is_reversed and refund.reversed_by == lender and loan.change_total == D("120.50")
    assert AuditEntry.objects.filter(action=AuditAction.CHANGE_REFUND_REVERSED, object_id=str(refund.pk)).exists()
    with pytest.raises(ValidationError) as caught:
        services.change_refund_reverse(refund=refund, actor=lender, reason="Again")
    assert codes(caught.value, "refund") == ["already_reversed"]


def test_refund_refuses_bad_input_naming_every_field(entity, lender):
    loan, _ = overpaid_loan(entity, lender)
    with pytest.raises(ValidationError) as caught:
        services.change_refund(entity=entity, actor=lender, loan=loan, amount="0", paid_on=None, method="cheque", reason=" ")
    assert set(caught.value.error_dict) == {"amount", "paid_on", "method", "reason"}
    with pytest.raises(ValidationError) as caught:
        services.change_refund_reverse(refund=ChangeRefund(), actor=lender, reason="")
    assert codes(caught.value, "reason") == ["required"]
    loan.refresh_from_db()
    assert loan.change_total == D("300.00")


def test_refund_of_another_entitys_loan_is_refused(entity, other_entity, lender):
    loan, _ = overpaid_loan(entity, lender)
    with pytest.raises(ValidationError) as caught:
        services.change_refund(entity=other_entity, actor=lender, loan=loan, amount="1", paid_on=dt.date(2026, 3, 1),
                               method="eft", reason="x")
    assert codes(caught.value, "loan") == ["other_entity"]


def test_a_receipt_whose_change_was_paid_out_is_reversed_only_after_the_refund(entity, lender):
    loan, receipt = overpaid_loan(entity, lender)
    refund = services.change_refund(entity=entity, actor=lender, loan=loan, amount="50", paid_on=dt.date(2026, 2, 21),
                                    method="eft", reason="Paid back")
    with pytest.raises(ValidationError) as caught:
        services.receipt_reverse(receipt=receipt, actor=lender, reason="Bounced")
    assert codes(caught.value, "receipt") == ["change_paid_out"]
    receipt.refresh_from_db()
    assert not receipt.is_reversed
    services.change_refund_reverse(refund=refund, actor=lender, reason="Recalled")
    services.receipt_reverse(receipt=receipt, actor=lender, reason="Bounced")
    loan.refresh_from_db()
    assert (loan.status, loan.received_total, loan.change_total) == (LoanStatus.ACTIVE, D("0.00"), D("0.00"))


def _check_conservation(entity, loan: Loan) -> None:
    loan.refresh_from_db()
    posted = aggregate_money(Receipt.objects.filter(loan=loan, is_reversed=False), a="amount", al="allocated", c="change")
    received, allocated, change = posted["a"], posted["al"], posted["c"]
    refunded = aggregate_money(ChangeRefund.objects.filter(loan=loan, is_reversed=False), t="amount")["t"]
    paid = aggregate_money(Instalment.objects.filter(loan=loan), p="paid")["p"]
    assert received == allocated + change                     # receipts = allocated + change
    assert loan.received_total == allocated == paid           # what was allocated is what the instalments hold
    assert loan.change_total == change - refunded >= 0        # change − refunds = change available
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=dt.date(2026, 6, 1))
    assert figures.change_available == loan.change_total      # and the snapshot says the same


def test_money_is_conserved_over_any_sequence_of_receipts_reversals_and_refunds(entity, lender):
    rng = random.Random(20260125)
    loan = make_loan(entity, user=lender)
    day = dt.date(2026, 1, 10)
    for step in range(60):
        day += dt.timedelta(days=1)
        loan.refresh_from_db()
        move = rng.random()
        try:
            if move < 0.4:
                services.receipt_post(entity=entity, actor=lender, loan=loan, payback_type="eft", value_date=day,
                                      amount=D(rng.randint(1, 150_000)) / 100, external_reference=f"R{step}")
            elif move < 0.55:
                live = list(Receipt.objects.filter(loan=loan, is_reversed=False))
                if live:
                    services.receipt_reverse(receipt=rng.choice(live), actor=lender, reason="random reversal")
            elif move < 0.85:
                if loan.change_total > 0:
                    cents = rng.randint(1, int(loan.change_total * 100) + 50)  # sometimes more than is available
                    services.change_refund(entity=entity, actor=lender, loan=loan, amount=D(cents) / 100, paid_on=day,
                                           method="cash", reason="random refund")
            else:
                live = list(ChangeRefund.objects.filter(loan=loan, is_reversed=False))
                if live:
                    services.change_refund_reverse(refund=rng.choice(live), actor=lender, reason="random refund reversal")
        except ValidationError as exc:
            # The only refusals expected: paying a closed loan, over-refunding, reversing a receipt whose
            # change was paid out. Each left the book as it was (checked below).
            assert {e.code for errs in exc.error_dict.values() for e in errs} <= {
                "wrong_status", "over_change_available", "change_paid_out"}, exc
        _check_conservation(entity, loan)
    assert ChangeRefund.objects.filter(loan=loan).exists(), "the sequence should have paid some change back"


# --- screens -------------------------------------------------------------------------------------
def test_refund_screen_from_the_loan_page_with_rights_and_field_errors(client, entity, lender):
    loan, _ = overpaid_loan(entity, lender)
    detail = reverse("web:loan_detail", kwargs={"loan_id": loan.pk})
    refund_url = reverse("web:change_refund_create", kwargs={"loan_id": loan.pk})

    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(viewer)
    page = client.get(detail).content.decode()
    assert "300.00" in page and refund_url not in page
    assert client.get(refund_url).status_code == 403

    client.force_login(lender)
    page = client.get(detail).content.decode()
    assert refund_url in page
    r = client.post(refund_url, {"amount": "300.01", "paid_on": "2026-02-21", "method": "eft", "reference": "", "reason": "x"})
    assert r.status_code == 400 and "more than the change available" in r.content.decode()
    r = client.post(refund_url, {"amount": "100", "paid_on": "2026-02-21", "method": "eft", "reference": "EFT-9",
                                 "reason": "Client asked"})
    assert r.status_code == 302
    loan.refresh_from_db()
    assert loan.change_total == D("200.00")
    refund = ChangeRefund.objects.get(loan=loan)
    page = client.get(detail).content.decode()
    assert "EFT-9" in page and "Client asked" in page and "Change paid back to the client" in page
    reverse_url = reverse("web:change_refund_reverse", kwargs={"changerefund_id": refund.pk})
    assert reverse_url in page
    assert client.post(reverse_url, {"reason": ""}).status_code == 400
    assert client.post(reverse_url, {"reason": "Bounced"}).status_code == 302
    loan.refresh_from_db()
    assert loan.change_total == D("300.00")


# --- API -----------------------------------------------------------------------------------------
def test_change_refund_api(entity, lender):
    loan, _ = overpaid_loan(entity, lender)
    api = APIClient()
    api.force_login(lender)
    assert api.get(f"/api/loans/{loan.pk}/").json()["change_available"] == "300.00"
    r = api.post("/api/change-refunds/", {"loan": loan.pk, "amount": "400", "paid_on": "2026-02-21", "method": "eft",
                                          "reason": "x"}, format="json")
    assert r.status_code == 400 and "more than the change available" in r.json()["amount"][0]
    r = api.post("/api/change-refunds/", {"loan": loan.pk, "amount": "250", "paid_on": "2026-02-21",
                                          "method": "mobile_money", "reference": "MM-1", "reason": "Paid to wallet"}, format="json")
    assert r.status_code == 201, r.json()
    refund_id = r.json()["id"]
    assert api.get(f"/api/loans/{loan.pk}/").json()["change_available"] == "50.00"
    assert [row["id"] for row in api.get(f"/api/change-refunds/?loan={loan.pk}").json()["results"]] == [refund_id]
    r = api.post(f"/api/change-refunds/{refund_id}/reverse/", {"reason": "Wallet refused"}, format="json")
    assert r.status_code == 200 and r.json()["is_reversed"] is True
    assert api.get(f"/api/loans/{loan.pk}/").json()["change_available"] == "300.00"

    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    api.force_login(viewer)
    assert api.post("/api/change-refunds/", {"loan": loan.pk, "amount": "1", "paid_on": "2026-02-21", "method": "eft",
                                             "reason": "x"}, format="json").status_code == 403
    assert api.post(f"/api/change-refunds/{refund_id}/reverse/", {"reason": "x"}, format="json").status_code == 403


def _pdf_text(data: bytes) -> str:
    """The text drawn on the PDF's pages: ReportLab writes it as literal strings in its content
    streams, ASCII85- then Flate-encoded."""
    import base64
    import re
    import zlib

    chunks = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", data, re.S):
        raw = stream.strip()
        try:
            chunks.append(zlib.decompress(base64.a85decode(raw.removesuffix(b"~>"))))
        except (ValueError, zlib.error):
            chunks.append(raw)
    return b"".join(chunks).decode("latin-1")


def test_statement_shows_change_paid_back_and_non_loan_debits(client, entity, lender):
    loan, _ = overpaid_loan(entity, lender)
    services.change_refund(entity=entity, actor=lender, loan=loan, amount="120", paid_on=dt.date(2026, 2, 21),
                           method="eft", reference="PAYBACK-7", reason="Client asked")
    services.non_loan_debit_add(entity=entity, actor=lender, client=loan.client, description="Returned debit fee",
                                amount="85", debit_date=dt.date(2026, 3, 2))
    client.force_login(lender)
    pdf = client.get(reverse("web:client_statement", kwargs={"client_id": loan.client_id}))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = _pdf_text(pdf.content)
    assert "PAYBACK-7" in text and "Change paid back" in text and "Returned debit fee" in text
    assert "180.00" in text and "85.00" in text  # change available 300 − 120; non-loan debt
