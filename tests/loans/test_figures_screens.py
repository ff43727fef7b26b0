"""The derived figures where a user sees them (loan page, client figures screen, API, statement),
and the query counts of the loan screens pinned so they do not grow with the book."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditAction, AuditEntry
from imali.loans import selectors, services
from imali.tenancy.rights import Right
from imali.web.display import money
from tests import factories
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_loan_page_shows_arrears_next_due_settlement_and_instalment_status(client, entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="905.01", value_date=dt.date(2026, 1, 23),
                          payback_type="eft")
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="100.00", value_date=dt.date(2026, 1, 30),
                          payback_type="mobile_money")
    client.force_login(lender)
    # Worked example 3's quote day.
    page = _text(client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk}), {"as_of": "2026-02-09"}))
    # Instalment 1 paid on 23 Jan; 2 partly paid (100 of 905.00) and due 25 Feb: nothing in arrears yet.
    assert 'class="arrears">0.00<' in page
    assert 'class="next-due">805.00 on 2026-02-25<' in page
    assert 'class="last-receipt">2026-01-30<' in page
    assert '<tr class="instalment status-paid">' in page and "2026-01-23</td> <td>Paid</td>" in page
    assert '<tr class="instalment status-partly_paid">' in page and '<tr class="instalment status-pending">' in page
    # The page's quote is the snapshot's (one definition, two implementations).
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=dt.date(2026, 2, 9))
    assert f'class="settlement">{money(figures.settlement)}<' in page
    assert f'class="outstanding">{money(figures.outstanding)}<' in page and figures.outstanding == D("1709.99")


def test_loan_page_arrears_days_months_and_date_totally_paid(client, entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    client.force_login(lender)
    detail = reverse("web:loan_detail", kwargs={"loan_id": loan.pk})
    page = _text(client.get(detail, {"as_of": "2026-04-01"}))
    # 23 Jan, 25 Feb and 25 Mar unpaid on 1 April: 2,715.00 in arrears for 68 days (3 months).
    assert 'class="arrears">2,715.00 · 68 days (3 months)<' in page
    assert page.count('<tr class="instalment status-in_arrears">') == 3
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="2800", value_date=dt.date(2026, 3, 31),
                          payback_type="social_grant_eft")
    page = _text(client.get(detail, {"as_of": "2026-04-01"}))
    assert 'class="paid-up-on">2026-03-31<' in page and 'class="change-available">85.00<' in page
    assert 'class="arrears">0.00<' in page and 'class="next-due">—<' in page


def test_client_figures_screen_shows_every_snapshot_figure_with_rights(client, entity, lender):
    borrower, _ = make_borrower(entity)
    product = make_product(entity, name="Figures product")
    paid = make_loan(entity, user=lender, product=product, client=borrower, principal="1000", instalments=1)
    services.receipt_post(entity=entity, actor=lender, loan=paid, amount="1500", value_date=dt.date(2026, 1, 20),
                          payback_type="cash")
    services.non_loan_debit_add(entity=entity, actor=lender, client=borrower, description="Returned debit fee",
                                amount="95", debit_date=dt.date(2026, 1, 21))
    figures_url = reverse("web:client_figures", kwargs={"client_id": borrower.pk})

    client.force_login(lender)
    assert figures_url in client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk})).content.decode()
    page = _text(client.get(figures_url, {"as_of": "2026-03-01"}))
    figures = selectors.client_figures(entity=entity, client_id=borrower.pk, as_of=dt.date(2026, 3, 1))
    assert figures.date_totally_paid is not None
    for value in (figures.date_totally_paid.isoformat(), f"{figures.pct_of_all_capital_pd}%", money(figures.change_available),
                  money(figures.non_loan_debt), "Figures product", f"({figures.days_since_last_loan} days ago)",
                  f"({figures.days_since_last_receipt} days ago)"):
        assert value in page, value
    assert 'class="new-loans">allowed<' in page and 'class="client-status">Good<' in page

    # A day of the user's choosing; a bad day says so and shows today's.
    later = make_loan(entity, user=lender, product=product, client=borrower, principal="2000", instalments=3,
                      disbursed_on=dt.date(2026, 2, 2))
    page = _text(client.get(figures_url, {"as_of": "2026-06-01"}))
    on_day = selectors.client_figures(entity=entity, client_id=borrower.pk, as_of=dt.date(2026, 6, 1))
    assert "Figures on 2026-06-01" in page and f'class="arrears">{money(on_day.arrears_amount)} · ' in page
    assert on_day.arrears_amount == later.total_repayable
    assert "Enter a date" in _text(client.get(figures_url, {"as_of": "1 June"}))

    outsider = factories.make_user(entity=entity, rights=[Right.CAPTURE_RECEIPTS])
    client.force_login(outsider)
    assert client.get(figures_url).status_code == 403


def test_api_loan_read_has_instalment_status_and_figures(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="905.01", value_date=dt.date(2026, 1, 23),
                                    payback_type="debicheck")
    api = APIClient()
    api.force_login(lender)
    body = api.get(f"/api/loans/{loan.pk}/", {"as_of": "2026-02-09"}).json()
    assert [i["status"] for i in body["schedule"]] == ["paid", "pending", "pending"]
    assert body["schedule"][0]["paid_on"] == "2026-01-23"
    assert body["figures"] == {"as_of": "2026-02-09", "outstanding": "1809.99", "arrears_amount": "0.00", "arrears_days": 0,
                               "arrears_months": 0, "next_due_date": "2026-02-25", "next_amount_due": "905.00",
                               "settlement": "1400.75"}
    assert api.get(f"/api/loans/{loan.pk}/", {"as_of": "9 Feb"}).status_code == 400
    listed = api.get("/api/loans/").json()["results"]
    assert listed[0]["figures"] is None and listed[0]["schedule"] == []
    other, _ = make_borrower(entity)
    make_loan(entity, user=lender, client=other)
    by_client = api.get("/api/receipts/", {"client": loan.client_id}).json()["results"]
    assert [r["id"] for r in by_client] == [receipt.pk]
    assert api.get("/api/receipts/", {"client": other.pk}).json()["results"] == []


def _book(entity, lender, *, loans: int, receipts: int):
    borrower, _ = make_borrower(entity)
    product = make_product(entity, name=f"Count {loans}")
    made = []
    for n in range(loans):
        loan = make_loan(entity, user=lender, product=product, client=borrower, principal="3000", instalments=6)
        for k in range(receipts):
            services.receipt_post(entity=entity, actor=lender, loan=loan, amount="300", value_date=dt.date(2026, 1, 20 + k),
                                  payback_type="eft", external_reference=f"C{loans}-{n}-{k}")
        services.non_loan_debit_add(entity=entity, actor=lender, client=borrower, description=f"Debit {n}", amount="10",
                                    debit_date=dt.date(2026, 1, 6))
        made.append(loan)
    return borrower, made


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_loan_screens_query_counts_do_not_grow_with_the_book(client, entity, lender, django_assert_max_num_queries):
    small_client, small_loans = _book(entity, lender, loans=1, receipts=1)
    big_client, big_loans = _book(entity, lender, loans=4, receipts=4)
    # The big book's loan page also lists change refunds: its loan is overpaid and change paid back twice.
    services.receipt_post(entity=entity, actor=lender, loan=big_loans[-1], amount="3500", value_date=dt.date(2026, 1, 28),
                          payback_type="naedo")
    for day in (29, 30):
        services.change_refund(entity=entity, actor=lender, loan=big_loans[-1], amount="10", paid_on=dt.date(2026, 1, day),
                               method="cash", reason="change")
    client.force_login(lender)

    def urls(borrower, loans):
        return {
            "loan list": reverse("web:loan_list"),
            "loan page": reverse("web:loan_detail", kwargs={"loan_id": loans[-1].pk}),
            "client page": reverse("web:client_detail", kwargs={"client_id": borrower.pk}),
            "client figures": reverse("web:client_figures", kwargs={"client_id": borrower.pk}),
            "debits": reverse("web:client_debits", kwargs={"client_id": borrower.pk}),
            "statement": reverse("web:client_statement", kwargs={"client_id": borrower.pk}),
            "API loan": f"/api/loans/{loans[-1].pk}/",
            "API loans": "/api/loans/",
            "API receipts": "/api/receipts/",
        }

    small, big = urls(small_client, small_loans), urls(big_client, big_loans)
    for name in small:
        assert _count(client, small[name]) == _count(client, big[name]), name
    # Pinned: session, user, entity, rights, then the screen's own reads. The snapshot selector
    # (client figures, statement) sets three planner settings first on PostgreSQL. The loan page
    # reads the agreement's signature; the client page its marketing opt-out and enrolment badges.
    planner = 3 if connection.vendor == "postgresql" else 0
    for name, most in (("loan list", 7), ("loan page", 13), ("client page", 13), ("client figures", 14 + planner),
                       ("debits", 9), ("statement", 19 + planner), ("API loan", 7), ("API loans", 7), ("API receipts", 7)):
        with django_assert_max_num_queries(most):
            client.get(big[name])


def test_api_client_figures_and_product_change(entity, other_entity, lender):
    borrower, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, client=borrower, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    api = APIClient()
    api.force_login(lender)
    body = api.get(f"/api/client-figures/{borrower.pk}/", {"as_of": "2026-04-01"}).json()
    figures = selectors.client_figures(entity=entity, client_id=borrower.pk, as_of=dt.date(2026, 4, 1))
    assert body["arrears_amount"] == "2715.00" == str(figures.arrears_amount)
    assert (body["arrears_days"], body["arrears_months"], body["open_loans"]) == (68, 3, 1)
    assert body["client_status"] == "good" and body["new_loans_allowed"] is True
    assert body["last_agreement_date"] == "2026-01-05" and body["last_agreement_product"] == loan.product.name
    assert api.get(f"/api/client-figures/{borrower.pk}/", {"as_of": "April"}).status_code == 400
    stranger, _ = make_borrower(other_entity)
    assert api.get(f"/api/client-figures/{stranger.pk}/").status_code == 404
    viewer = factories.make_user(entity=entity, rights=[Right.CAPTURE_RECEIPTS])
    api_viewer = APIClient()
    api_viewer.force_login(viewer)
    assert api_viewer.get(f"/api/client-figures/{borrower.pk}/").status_code == 403

    # A product is changed field by field, checked against the caps, audited; loans keep their terms.
    product = loan.product
    r = api.patch(f"/api/loan-products/{product.pk}/", {"interest_rate_pm": "5.01"}, format="json")
    assert r.status_code == 400 and "(Short-term credit: interest on a first loan)" in r.json()["interest_rate_pm"][0]
    r = api.patch(f"/api/loan-products/{product.pk}/", {"interest_rate_pm": "4.5", "name": "Cheaper"}, format="json")
    assert r.status_code == 200 and r.json()["interest_rate_pm"] == "4.5000" and r.json()["name"] == "Cheaper"
    assert r.json()["max_principal"] == "8000.00"
    loan.refresh_from_db()
    assert loan.interest_rate_pm == D("5.0000")
    assert AuditEntry.objects.filter(action=AuditAction.LOAN_PRODUCT_UPDATED, object_id=str(product.pk)).exists()
    assert api_viewer.patch(f"/api/loan-products/{product.pk}/", {"name": "x"}, format="json").status_code == 403
