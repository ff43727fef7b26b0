"""The home page as a lender's morning view: each figure against a book built by hand, the arrears
chart as inline SVG, rights per figure, entity isolation, the operator's view, and a fixed number
of queries whatever the size of the book."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from imali.loans.models import Instalment
from imali.loans.services import (
    loan_apply,
    loan_approve,
    local_today,
    receipt_post,
    receipt_reverse,
)
from imali.messaging.credits import credits_assign
from imali.tenancy.rights import Right
from imali.web.selectors import ARREARS_AGES, book_morning, messaging_morning
from tests import factories
from tests.loans.conftest import make_borrower, make_loan, make_product
from tests.messaging.test_reports import local, sms

pytestmark = pytest.mark.django_db

TODAY = dt.date(2026, 6, 15)


@pytest.fixture
def lender(entity):
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    return user


def _by_definition(entity, today):
    """Outstanding and arrears by age straight from the instalment rows, as the module defines them."""
    outstanding, ages = Decimal("0.00"), [Decimal("0.00")] * len(ARREARS_AGES)
    for i in Instalment.objects.filter(entity=entity, open=True):
        owed = i.amount - i.paid
        if owed <= 0:
            continue
        outstanding += owed
        overdue = today.toordinal() - i.due_ord
        for n, (_, first, last) in enumerate(ARREARS_AGES):
            if overdue >= first and (last is None or overdue <= last):
                ages[n] += owed
    return outstanding, ages


@pytest.fixture
def hand_book(entity, other_entity, lender):
    """Loans paid out at chosen dates (so instalments are overdue by chosen ages on TODAY), receipts
    of chosen amounts on chosen days, one reversed, and work waiting at each step."""
    product = make_product(entity)
    old = make_loan(entity, user=lender, product=product, principal="3000", instalments=6, disbursed_on=dt.date(2025, 11, 3))
    recent = make_loan(entity, user=lender, product=product, principal="1500.55", instalments=3, disbursed_on=dt.date(2026, 6, 3))
    make_loan(entity, user=lender, product=product, principal="2000.45", instalments=3, disbursed_on=TODAY)
    make_loan(entity, user=lender, product=product, principal="999.99", instalments=2, disbursed_on=dt.date(2026, 5, 31))
    # Receipts: today 100.10 and 0.20, this month 200.30 (and 1,000.00 reversed), last month 50.00.
    receipt_post(entity=entity, actor=lender, loan=old, amount="50.00", value_date=dt.date(2026, 5, 31), payback_type="cash")
    receipt_post(entity=entity, actor=lender, loan=old, amount="200.30", value_date=dt.date(2026, 6, 1), payback_type="cash")
    reversed_receipt = receipt_post(entity=entity, actor=lender, loan=old, amount="1000.00", value_date=dt.date(2026, 6, 10),
                                    payback_type="cash")
    receipt_reverse(receipt=reversed_receipt, actor=lender, reason="Bounced")
    receipt_post(entity=entity, actor=lender, loan=recent, amount="100.10", value_date=TODAY, payback_type="cash")
    receipt_post(entity=entity, actor=lender, loan=old, amount="0.20", value_date=TODAY, payback_type="cash")
    # Work waiting: two applications, one approved loan; none signed.
    client, _ = make_borrower(entity)
    for _ in range(2):
        loan_apply(entity=entity, actor=lender, client=client, product=product, principal="800", instalments=2, applied_on=TODAY)
    approved = loan_apply(entity=entity, actor=lender, client=client, product=product, principal="900", instalments=2, applied_on=TODAY)
    loan_approve(loan=approved, actor=lender)
    # Another lender's book on the same days never shows.
    other_lender = factories.make_admin(entity=other_entity)
    other_lender.disbursement_limit = Decimal("100000")
    other_lender.save()
    other = make_loan(other_entity, user=other_lender, principal="5000", instalments=3, disbursed_on=TODAY)
    receipt_post(entity=other_entity, actor=other_lender, loan=other, amount="777.77", value_date=TODAY, payback_type="cash")
    loan_apply(entity=other_entity, actor=other_lender, client=other.client, product=other.product, principal="800",
               instalments=2, applied_on=TODAY)
    return {"old": old}


def test_book_figures_match_the_hand_built_book(entity, hand_book):
    book = book_morning(entity=entity, today=TODAY)
    outstanding, ages = _by_definition(entity, TODAY)
    assert book.outstanding == outstanding and book.outstanding > 0
    assert [a.amount for a in book.arrears] == ages
    # The loan of 2025-11-03 is monthly: by 2026-06-15 instalments are overdue in several ages.
    assert sum(1 for a in ages if a > 0) >= 3
    assert book.arrears_total == sum(ages)
    assert (book.collections_today.amount, book.collections_today.count) == (Decimal("100.30"), 2)
    assert (book.collections_month.amount, book.collections_month.count) == (Decimal("300.60"), 3)
    assert (book.disbursements_today.amount, book.disbursements_today.count) == (Decimal("2000.45"), 1)
    assert (book.disbursements_month.amount, book.disbursements_month.count) == (Decimal("3501.00"), 2)
    assert (book.pending_approvals, book.awaiting_payout, book.pending_signatures) == (2, 1, 3)


def test_book_sums_are_exact_where_floats_would_drift(entity, lender):
    # 0.10 + 0.20 summed as binary floats gives 0.30000000000000004; a million such cents drift further.
    loan = make_loan(entity, user=lender, principal="5000", instalments=6, disbursed_on=dt.date(2026, 1, 5))
    for _ in range(10):
        receipt_post(entity=entity, actor=lender, loan=loan, amount="0.10", value_date=TODAY, payback_type="cash")
        receipt_post(entity=entity, actor=lender, loan=loan, amount="0.20", value_date=TODAY, payback_type="cash")
    book = book_morning(entity=entity, today=TODAY)
    assert book.collections_today.amount == Decimal("3.00")
    assert str(book.collections_today.amount) == "3.00"


def test_empty_book_is_all_zero(entity):
    book = book_morning(entity=entity, today=TODAY)
    assert book.outstanding == Decimal("0.00") and book.arrears_total == Decimal("0.00")
    assert book.collections_month.count == 0 and book.pending_signatures == 0


def test_messaging_figures(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=12500)
    for status in ("delivered", "delivered", "delivered", "failed", "submitted", "cancelled"):
        sms(entity, at=local(entity, 2026, 6, 2, 9, 0), status=status)
    sms(entity, at=local(entity, 2026, 5, 31, 9, 0), status="failed")  # last month
    figures = messaging_morning(entity=entity, today=TODAY)
    assert figures.credits_left == 12500
    assert (figures.delivered_month, figures.finished_month, figures.sent_month) == (3, 4, 5)
    assert figures.delivery_rate == Decimal("75.0")


def _page(client, user):
    client.force_login(user)
    return client.get(reverse("web:home"))


def test_home_page_shows_each_figure_with_its_link(client, entity, lender, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=12500)
    product = make_product(entity)
    make_loan(entity, user=lender, product=product, principal="7345.67", instalments=3,
              disbursed_on=local_today(entity) - dt.timedelta(days=120))
    response = _page(client, lender)
    page = response.content.decode()
    book = response.context["book"]
    assert book.outstanding > Decimal("7345.67")
    assert re.search(r'data-figure="outstanding">\s*<span class="tile-figure">' + re.escape(f"{book.outstanding:,.2f}"), page)
    assert f'href="{reverse("web:loan_list")}?status=application" data-figure="pending-approvals"' in page
    assert f'href="{reverse("web:signing_loans")}" data-figure="pending-signatures"' in page
    assert 'data-figure="sms-credits">\n        <span class="tile-figure">12,500</span>' in page
    # The chart: inline SVG from pygal, no script, no XML declaration, no outside address.
    chart = page[page.index('data-chart="arrears"'):]
    assert "<svg" in chart and "<?xml" not in page
    svg = chart[chart.index("<svg"):chart.index("</svg>")]
    assert "<script" not in svg and "kozea" not in page and "//" not in svg.replace("http://www.w3.org", "")
    assert "61–90 days" in svg


def test_figures_follow_the_rights(client, entity, hand_book):
    credits_only = factories.make_user(entity=entity, rights=[Right.MAXSMS_GENERAL_SETUP])
    page = _page(client, credits_only).content.decode()
    assert 'data-figure="sms-credits"' in page
    for hidden in ("outstanding", "pending-approvals", "pending-signatures", "collections-today"):
        assert f'data-figure="{hidden}"' not in page
    assert "<svg" not in page

    signing_only = factories.make_user(entity=entity, rights=[Right.CAPTURE_LOANS])
    response = _page(client, signing_only)
    page = response.content.decode()
    assert 'data-figure="pending-signatures"' in page and 'data-figure="outstanding"' not in page
    assert 'data-figure="sms-credits"' not in page and 'data-figure="delivery-rate"' not in page


def test_operator_sees_entities_and_their_credits(client, entity, other_entity, operator):
    credits_assign(actor=operator, entity=other_entity, channel="sms", amount=4321)
    response = _page(client, operator)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<tr data-entity="{other_entity.code}"><td>{other_entity.name}</td><td>{other_entity.code}</td><td class="num">4,321</td>' in page
    assert 'data-figure="outstanding"' not in page


def test_home_page_queries_do_not_grow_with_the_book(client, entity, lender, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=100)
    client.force_login(lender)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("web:home")).status_code == 200
        return len(queries)

    empty = count()
    product = make_product(entity)
    for n in range(4):
        loan = make_loan(entity, user=lender, product=product, principal="1000", instalments=3,
                         disbursed_on=local_today(entity) - dt.timedelta(days=40 * n))
        receipt_post(entity=entity, actor=lender, loan=loan, amount="10", value_date=local_today(entity), payback_type="cash")
        sms(entity, at=timezone.now())
    assert count() == empty
    # Session and user, the navigation's rights, three people counts, the book in one statement,
    # credits (account and ledger) and the month's messages in one grouped count.
    assert empty == EXPECTED_HOME_QUERIES


EXPECTED_HOME_QUERIES = 12


def test_chart_escapes_labels_and_carries_no_script():
    from imali.web.charts import bar_chart_svg

    svg = bar_chart_svg(title="<b>Arrears</b>", labels=["</script><script>alert(1)</script>", "b&c"],
                        values=[Decimal("1234.5"), Decimal("0.10")], series="x")
    assert "<script" not in svg and "alert(1)</script>" not in svg
    assert "&lt;/script&gt;" in svg and "b&amp;c" in svg and "&lt;b&gt;Arrears" in svg
    assert "1,234.50" in svg and "0.10" in svg
    assert svg.startswith("<svg")
    long_label = bar_chart_svg(title="t", labels=["Over 120 days"], values=[Decimal("1")], series="x")
    assert "Over 120 days" in long_label and "…" not in long_label  # labels are never cut short


def test_stacked_chart_ticks_are_whole_numbers():
    from imali.web.charts import stacked_bar_chart_svg

    svg = stacked_bar_chart_svg(labels=["11-01", "11-02"], series=[("Delivered", "#009e73", [2, 1]), ("Failed", "#d55e00", [1, 0])],
                                tooltips=["Sun 2026-11-01", "Mon 2026-11-02"])
    y_axis = svg[svg.index('<g class="axis y'):svg.index('<g class="axis x"')]
    ticks = re.findall(r'<text [^>]*>([^<]*)</text>', y_axis)
    assert ticks and all(t.isdigit() for t in ticks) and len(ticks) == len(set(ticks))
    assert "Sun 2026-11-01: 2 Delivered" in svg and "<script" not in svg
