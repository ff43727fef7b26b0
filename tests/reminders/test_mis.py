"""MIS SMS: each figure exact against a hand-built book (entity and per branch), the texts within
two segments, the streams' recipients, never twice, the monthly summary on the first."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imali.loans.models import Instalment, Loan, Receipt
from imali.loans.services import receipt_post, receipt_reverse
from imali.messaging.credits import credit_balance
from imali.messaging.models import MessageType, OutboxMessage
from imali.messaging.segments import segment_count
from imali.reminders import selectors, services
from imali.reminders.models import DailyRun, MisRecipient, MisSetup
from imali.tenancy.models import Branch, User
from tests import factories
from tests.reminders.conftest import make_borrower, make_loan

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 2, 10)  # the day the figures are of; the MIS SMS go on the 11th


@pytest.fixture
def book(entity, funded, lender, product):
    north = Branch.objects.create(entity=entity, code="N1", name="North", telephone="0111234567")
    head = entity.branches.get(code="HO")
    loans = {}
    for branch in (head, north):
        old_client, _ = make_borrower(entity, branch=branch)
        loans[f"{branch.code}-old"] = make_loan(entity, user=lender, product=product, client=old_client,
                                                principal="2000" if branch == head else "3000")
        new_client, _ = make_borrower(entity, branch=branch)
        loans[f"{branch.code}-new"] = make_loan(entity, user=lender, product=product, client=new_client,
                                                principal="1500.50" if branch == head else "2500", disbursed_on=DAY)
    receipt_post(entity=entity, actor=lender, loan=loans["HO-old"], amount="150.25", value_date=DAY, payback_type="cash")
    receipt_post(entity=entity, actor=lender, loan=loans["N1-old"], amount="300.00", value_date=DAY, payback_type="eft")
    receipt_post(entity=entity, actor=lender, loan=loans["N1-old"], amount="20.00", value_date=DAY - dt.timedelta(days=1),
                 payback_type="cash")
    bounced = receipt_post(entity=entity, actor=lender, loan=loans["N1-old"], amount="75.00", value_date=DAY,
                           payback_type="debit_order")
    receipt_reverse(actor=lender, receipt=bounced, reason="bounced")
    return {"head": head, "north": north, "loans": loans}


def _expected(entity, day: dt.date, branch=None) -> dict:
    """The figures by hand: Python over the rows, not the selectors' SQL."""
    loans = Loan.objects.filter(entity=entity, disbursed_on=day)
    receipts = Receipt.objects.filter(entity=entity, value_date=day, is_reversed=False)
    instalments = Instalment.objects.filter(entity=entity, open=True)
    if branch is not None:
        loans, receipts = loans.filter(client__branch=branch), receipts.filter(client__branch=branch)
        instalments = instalments.filter(client__branch=branch)
    morning = day + dt.timedelta(days=1)
    late = [i for i in instalments if i.due_date < morning and i.paid < i.amount]
    return {"loans_issued": len(loans), "loans_issued_value": sum((x.principal for x in loans), Decimal("0.00")),
            "receipts": len(receipts), "receipts_value": sum((r.amount for r in receipts), Decimal("0.00")),
            "arrears_clients": len({i.client_id for i in late}),
            "arrears_value": sum((i.amount - i.paid for i in late), Decimal("0.00")),
            "outstanding": sum((i.amount - i.paid for i in instalments), Decimal("0.00"))}


def _as_dict(figures) -> dict:
    return {k: getattr(figures, k) for k in ("loans_issued", "loans_issued_value", "receipts", "receipts_value",
                                             "arrears_clients", "arrears_value", "outstanding")}


def test_entity_figures_are_the_books(entity, book):
    figures = selectors.entity_figures(entity=entity, day=DAY)
    expected = _expected(entity, DAY)
    assert _as_dict(figures) == expected
    # The book is not trivial: every figure has something in it.
    assert expected["loans_issued"] == 2 and expected["loans_issued_value"] == Decimal("4000.50")
    assert expected["receipts"] == 2 and expected["receipts_value"] == Decimal("450.25")
    assert expected["arrears_clients"] == 2 and expected["arrears_value"] > 0


def test_branch_figures_are_the_books_per_branch_and_add_up(entity, book):
    by_branch = selectors.branch_figures(entity=entity, day=DAY)
    assert set(by_branch) == {book["head"].pk, book["north"].pk}
    for branch in (book["head"], book["north"]):
        assert _as_dict(by_branch[branch.pk]) == _expected(entity, DAY, branch=branch)
    total = selectors.entity_figures(entity=entity, day=DAY)
    for name in ("loans_issued_value", "receipts_value", "arrears_value", "outstanding"):
        assert sum(getattr(f, name) for f in by_branch.values()) == getattr(total, name)


def test_month_figures(entity, book):
    month = selectors.month_figures(entity=entity, month_end=dt.date(2026, 2, 28))
    loans = Loan.objects.filter(entity=entity, disbursed_on__gte=dt.date(2026, 2, 1), disbursed_on__lte=dt.date(2026, 2, 28))
    receipts = Receipt.objects.filter(entity=entity, is_reversed=False, value_date__gte=dt.date(2026, 2, 1),
                                      value_date__lte=dt.date(2026, 2, 28))
    assert (month.loans_issued, month.loans_issued_value) == (2, sum(x.principal for x in loans))
    assert (month.receipts, month.receipts_value) == (3, sum(r.amount for r in receipts))
    expected = _expected(entity, dt.date(2026, 2, 28))
    assert (month.arrears_clients, month.arrears_value, month.outstanding) == (
        expected["arrears_clients"], expected["arrears_value"], expected["outstanding"])


def test_texts_carry_each_figure_within_two_segments(entity, book):
    figures = selectors.entity_figures(entity=entity, day=DAY)
    text = services.mis_text("management", entity=entity, figures=figures, name=entity.name, credits_left=9876)
    for piece in (f"Loans issued 2 {entity.currency} 4,000.50", f"Receipts 2 {entity.currency} 450.25",
                  f"Arrears 2 clients {entity.currency} {figures.arrears_value:,.2f}",
                  f"Book {entity.currency} {figures.outstanding:,.2f}", "SMS credits 9,876", DAY.isoformat()):
        assert piece in text
    assert segment_count(text) <= 2
    cash = services.mis_text("cash_flow", entity=entity, figures=figures, name=entity.name, credits_left=9876)
    assert f"Net {entity.currency} -3,550.25" in cash and segment_count(cash) <= 2
    # The largest figures and a long name still fit in two parts; the name gives way first.
    huge = selectors.Figures(day=DAY, loans_issued=999_999, loans_issued_value=Decimal("999999999.99"), receipts=999_999,
                             receipts_value=Decimal("999999999.99"), arrears_clients=999_999,
                             arrears_value=Decimal("999999999.99"), outstanding=Decimal("999999999.99"))
    long_name = "The Very Long Name Of A Micro Lender Trading In Five Countries (Pty) Ltd"
    for stream in ("management", "cash_flow", "branch"):
        fitted = services.mis_text(stream, entity=entity, figures=huge, name=long_name, credits_left=99_999_999)
        assert segment_count(fitted) <= 2
        assert "999,999,999.99" in fitted


def _recipient(entity, stream, *, branch=None, cellphone="+27821110000"):
    user = factories.make_user(entity=entity)
    User.objects.filter(pk=user.pk).update(cellphone=cellphone, home_branch=branch)
    MisRecipient.objects.create(entity=entity, stream=stream, user=user)
    return user


def test_a_day_of_mis_sms_goes_to_each_streams_users_once(entity, book):
    setup = services.mis_setup_get(entity=entity)
    MisSetup.objects.filter(pk=setup.pk).update(management_enabled=True, cash_flow_enabled=True, branch_enabled=True,
                                                monthly_enabled=True)
    manager = _recipient(entity, "management", cellphone="+27821110001")
    MisRecipient.objects.create(entity=entity, stream="cash_flow", user=manager)
    north_user = _recipient(entity, "branch", branch=book["north"], cellphone="+27821110002")
    _recipient(entity, "branch", branch=None, cellphone="+27821110003")  # no home branch: left out, counted
    phoneless = _recipient(entity, "management", cellphone="")
    run_day = DAY + dt.timedelta(days=1)
    credits_before = credit_balance(entity=entity)
    run = services.mis_run_day(entity=entity, business_date=run_day)
    assert run.finished_at is not None and run.error == ""
    sent = OutboxMessage.objects.filter(entity=entity, message_type=MessageType.MIS)
    assert sorted(sent.values_list("idempotency_key", flat=True)) == sorted([
        f"mis:management:{run_day}:u{manager.pk}", f"mis:cash_flow:{run_day}:u{manager.pk}",
        f"mis:branch:{run_day}:u{north_user.pk}"])
    assert all(m.created_by_id is None and m.segments <= 2 for m in sent)
    assert run.results["management"]["skipped_reasons"] == {"no_cellphone": 1}
    assert run.results["branch:no_home_branch"] == {"skipped": 1}
    north = _expected(entity, DAY, branch=book["north"])
    branch_text = sent.get(user=north_user).text
    assert branch_text.startswith("North MIS 2026-02-10")
    assert f"Receipts 1 {entity.currency} 300.00" in branch_text
    assert f"Book {entity.currency} {north['outstanding']:,.2f}" in branch_text
    # The credits line is the ledger before the day's MIS SMS were paid for.
    assert f"SMS credits {credits_before:,}" in sent.get(idempotency_key__startswith="mis:management").text
    assert phoneless.pk not in sent.values_list("user_id", flat=True)
    # Not the first of the month: no monthly summary. Again: nothing twice.
    DailyRun.objects.all().delete()
    services.mis_run_day(entity=entity, business_date=run_day)
    assert sent.count() == 3


def test_monthly_summary_on_the_first(entity, book):
    setup = services.mis_setup_get(entity=entity)
    MisSetup.objects.filter(pk=setup.pk).update(monthly_enabled=True)
    manager = _recipient(entity, "monthly")
    run = services.mis_run_day(entity=entity, business_date=dt.date(2026, 3, 1))
    message = OutboxMessage.objects.get(entity=entity, message_type=MessageType.MIS)
    assert message.idempotency_key == f"mis:monthly:2026-02:u{manager.pk}"
    assert "month 2026-02: Loans issued 2" in message.text and run.results["monthly"]["queued"] == 1


def test_a_fault_in_one_entitys_run_frees_the_day_lets_others_run_and_gives_up_after_max_attempts(
        entity, other_entity, book, operator, caplog):
    """Regression: an exception other than ValidationError left the run's lease held, stopped the
    loop before the other entities' days, and MAX_ATTEMPTS was never applied."""
    import logging

    from imali.messaging.credits import credits_assign
    from tests.reminders.conftest import local_at

    # The fault: a branch-stream user whose home branch is another entity's (corrupt data) - the
    # branch figures of this entity have no entry for it (a KeyError, not a ValidationError).
    for e in (entity, other_entity):
        MisSetup.objects.update_or_create(entity=e, defaults={"branch_enabled": True, "management_enabled": True,
                                                              "run_at": dt.time(6, 0)})
    _recipient(entity, "branch", branch=other_entity.branches.first(), cellphone="+27821110009")
    credits_assign(actor=operator, entity=other_entity, channel="sms", amount=100)
    _recipient(other_entity, "management", cellphone="+27821110010")
    run_day = DAY + dt.timedelta(days=1)
    now = local_at(entity, run_day, 7)
    with caplog.at_level(logging.ERROR, logger="imali.reminders.services"):
        services.runs_due_execute(now)
    faulty = DailyRun.objects.get(entity=entity, kind="mis", business_date=run_day)
    assert (faulty.finished_at, faulty.lease_until, faulty.attempts) == (None, None, 1)
    assert "KeyError" in faulty.error and "KeyError" in caplog.text
    assert "+2782111" not in caplog.text  # no numbers in the log
    # The other entity's day ran all the same.
    other = DailyRun.objects.get(entity=other_entity, kind="mis", business_date=run_day)
    assert other.finished_at is not None and other.error == ""
    assert OutboxMessage.objects.filter(entity=other_entity, message_type=MessageType.MIS).count() == 1
    # Retried on each tick until MAX_ATTEMPTS, then given up (finished, its error kept) so later days can go.
    for _ in range(services.MAX_ATTEMPTS - 1):
        services.runs_due_execute(now)
    faulty.refresh_from_db()
    assert faulty.attempts == services.MAX_ATTEMPTS and faulty.finished_at is not None and "KeyError" in faulty.error
    assert [d for k, e, d in services.runs_due(now) if e.pk == entity.pk and k == "mis"] == []
