"""Client status and New Loans Allowed: the rules that move them (daily close, write-off,
hand-over, disbursement) agree with the pure rule, are audited on the client, and are enforced at
application, approval and disbursement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.clients.models import Client, ClientStatus
from imali.clients.services import client_update
from imali.core.models import AuditAction, AuditEntry
from imali.loans import rules, selectors, services
from imali.loans.daily_close import daily_close_run
from imali.loans.models import Instalment, Loan, LoanStatus
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db

CLOSE_DAY = dt.date(2026, 4, 25)  # the first instalment of a loan disbursed 5 Jan is 92 days overdue


def _client_entries(client: Client) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(object_type="clients.Client", object_id=str(client.pk),
                                          action=AuditAction.CLIENT_UPDATED).order_by("id"))


def _situation(entity, lender, product, status: str, book: str) -> Client:
    """A client in `status` whose book is: none, current (an active loan, nothing overdue),
    late (an active loan 92 days in arrears), written_off (a written-off loan still owed)."""
    client, _ = make_borrower(entity)
    if book == "current":
        make_loan(entity, user=lender, product=product, client=client, disbursed_on=dt.date(2026, 4, 1))
    elif book in ("late", "written_off"):
        loan = make_loan(entity, user=lender, product=product, client=client)
        if book == "written_off":
            services.loan_write_off(loan=loan, actor=lender, reason="uncollectable")
    # The status a person (or an earlier rule) set, with new loans allowed, whatever the status.
    Client.objects.filter(pk=client.pk).update(status=status, new_loans_allowed=True)
    return client


def test_daily_close_moves_every_status_as_the_pure_rule_says_and_audits_each_move(entity, lender):
    product = make_product(entity, name="Status rules")
    books = ("none", "current", "late", "written_off")
    cases = {(status, book): _situation(entity, lender, product, status, book)
             for status in ClientStatus.values for book in books}
    before = {key: len(_client_entries(c)) for key, c in cases.items()}

    close, ran = daily_close_run(entity=entity, business_date=CLOSE_DAY)
    assert ran

    moved = 0
    for (status, book), client in cases.items():
        client.refresh_from_db()
        expected = rules.client_status_after(
            status=status, new_loans_allowed=True, has_open_loans=book in ("current", "late"),
            oldest_arrears_days=92 if book == "late" else 0, has_written_off=book == "written_off")
        assert (client.status, client.new_loans_allowed) == expected, (status, book)
        entries = _client_entries(client)[before[(status, book)]:]
        if expected != (status, True):
            moved += 1
            # The client's history says what moved it, from what, and by which rule.
            assert len(entries) == 1, (status, book)
            assert entries[0].before["status"] == status and entries[0].after["status"] == expected[0]
            assert entries[0].after["rule"].startswith(f"daily close {CLOSE_DAY.isoformat()}")
        else:
            assert entries == [], (status, book)
    assert close.clients_updated == moved
    # Statuses set by people stay, but never with new loans allowed.
    for status in rules.MANUAL_CLIENT_STATUSES:
        client = cases[(status, "current")]
        assert (client.status, client.new_loans_allowed) == (status, False)
    # A second close of the same day changes nothing and writes nothing.
    count = AuditEntry.objects.count()
    assert daily_close_run(entity=entity, business_date=CLOSE_DAY)[1] is False
    assert AuditEntry.objects.count() == count


def test_client_history_shows_write_off_hand_over_and_disbursement_moves(client, entity, lender):
    borrower, _ = make_borrower(entity, status=ClientStatus.INACTIVE)
    loan = make_loan(entity, user=lender, client=borrower)
    borrower.refresh_from_db()
    assert borrower.status == ClientStatus.GOOD
    services.loan_hand_over(loan=loan, actor=lender, reason="Passed to collectors")
    services.loan_write_off(loan=loan, actor=lender, reason="Collector gave up")
    borrower.refresh_from_db()
    assert (borrower.status, borrower.new_loans_allowed) == (ClientStatus.BAD, False)
    rules_seen = [(e.before["status"], e.after["status"], e.after["rule"], e.actor_id) for e in _client_entries(borrower)]
    assert rules_seen == [
        ("inactive", "good", f"loan {loan.pk} disbursed", lender.pk),
        ("good", "handed_over", f"loan {loan.pk} handed over: Passed to collectors", lender.pk),
        ("handed_over", "bad", f"loan {loan.pk} written off: Collector gave up", lender.pk),
    ]
    client.force_login(lender)
    page = client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk})).content.decode()
    assert "Collector gave up" in page and "Passed to collectors" in page
    assert 'class="new-loans">not allowed<' in page and 'class="client-status">Bad<' in page


@pytest.mark.parametrize("status", [ClientStatus.BLACKLISTED, ClientStatus.DECEASED, ClientStatus.BAD])
def test_approval_and_disbursement_refused_once_the_client_may_not_borrow(entity, lender, status):
    borrower, account = make_borrower(entity)
    product = make_product(entity, name="Gate")
    applied = services.loan_apply(entity=entity, actor=lender, client=borrower, product=product, principal="2000",
                                  instalments=3, applied_on=dt.date(2026, 1, 5))
    approved = services.loan_apply(entity=entity, actor=lender, client=borrower, product=product, principal="1000",
                                   instalments=2, applied_on=dt.date(2026, 1, 5))
    services.loan_approve(loan=approved, actor=lender)
    # A person marks the client (audited as any client edit) between application and payout.
    client_update(client=borrower, actor=lender, data={"status": status})
    assert AuditEntry.objects.filter(object_id=str(borrower.pk), action=AuditAction.CLIENT_UPDATED,
                                     after__status=status.value).exists()
    with pytest.raises(ValidationError) as exc:
        services.loan_approve(loan=applied, actor=lender)
    assert exc.value.error_dict["client"][0].code == "client_not_allowed"
    with pytest.raises(ValidationError) as exc:
        services.loan_disburse(loan=approved, actor=lender, payout_account=account, disbursed_on=dt.date(2026, 1, 6))
    assert exc.value.error_dict["client"][0].code == "client_not_allowed"
    assert status.label in exc.value.error_dict["client"][0].message
    # Nothing half-written: both loans as they were, no schedule.
    assert list(Loan.objects.filter(pk__in=[applied.pk, approved.pk]).order_by("pk").values_list("status", flat=True)) == [
        LoanStatus.APPLICATION, LoanStatus.APPROVED]
    assert not Instalment.objects.filter(loan__in=[applied, approved]).exists()
    with pytest.raises(ValidationError) as exc:
        services.loan_apply(entity=entity, actor=lender, client=borrower, product=product, principal="1000", instalments=2)
    assert exc.value.error_dict["client"][0].code == "client_not_allowed"


def test_new_loans_not_allowed_refuses_a_good_client(entity, lender):
    borrower, _ = make_borrower(entity, new_loans_allowed=False)
    with pytest.raises(ValidationError) as exc:
        services.loan_apply(entity=entity, actor=lender, client=borrower, product=make_product(entity), principal="1000",
                            instalments=2)
    assert "new loans not allowed" in exc.value.error_dict["client"][0].message


def test_reversing_the_receipt_that_paid_a_defaulted_loan_up_restores_it_exactly(entity, lender):
    loan = make_loan(entity, user=lender)
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    loan.refresh_from_db()
    assert loan.default_since == dt.date(2026, 2, 23) and loan.default_balance == D("2270.59")

    def state():
        row = Loan.objects.filter(pk=loan.pk).values().get()
        return row, list(Instalment.objects.filter(loan=loan).order_by("seq").values())

    before = state()
    owed = selectors.loan_outstanding(loan=loan)
    receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=owed, value_date=dt.date(2026, 2, 24),
                                    payback_type="debit_order", external_reference="DO-1")
    loan.refresh_from_db()
    assert loan.status == LoanStatus.PAID_UP and loan.paid_up_on == dt.date(2026, 2, 24)
    services.receipt_reverse(receipt=receipt, actor=lender, reason="Debit order returned unpaid")
    assert state() == before  # default date and in-duplum cap included

    # Paid up for good, the next close clears the default.
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=owed, value_date=dt.date(2026, 2, 25),
                          payback_type="eft", external_reference="EFT-1")
    close, _ = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 25))
    loan.refresh_from_db()
    assert close.loans_cured == 1 and loan.default_since is None and loan.default_balance is None


def test_receipt_dated_before_the_payout_is_refused(entity, lender):
    loan = make_loan(entity, user=lender, disbursed_on=dt.date(2026, 1, 5))
    with pytest.raises(ValidationError) as exc:
        services.receipt_post(entity=entity, actor=lender, loan=loan, amount="100", value_date=dt.date(2026, 1, 4),
                              payback_type="cash")
    assert exc.value.error_dict["value_date"][0].code == "out_of_range"
    assert not loan.receipts.exists()


def test_application_screen_says_why_before_the_form_is_filled_in(client, entity, lender):
    borrower, _ = make_borrower(entity, status=ClientStatus.DECEASED, new_loans_allowed=False)
    make_product(entity, name="Screen gate")
    client.force_login(lender)
    url = reverse("web:loan_apply", kwargs={"client_id": borrower.pk})
    assert "status Deceased, new loans not allowed" in client.get(url).content.decode()
    product = selectors.product_list(entity=entity).get()
    page = client.post(url, {"product": product.pk, "principal": "1000", "instalments": "2"}).content.decode()
    assert "Client: The client may not take a new loan" in page
    assert not Loan.objects.filter(client=borrower).exists()


def test_receipt_dated_in_the_future_is_refused(entity, lender):
    loan = make_loan(entity, user=lender, disbursed_on=dt.date(2026, 1, 5))
    tomorrow = services.local_today(entity) + dt.timedelta(days=1)
    with pytest.raises(ValidationError) as exc:
        services.receipt_post(entity=entity, actor=lender, loan=loan, amount="100", value_date=tomorrow, payback_type="eft")
    assert exc.value.error_dict["value_date"][0].code == "out_of_range"
    assert not loan.receipts.exists()
