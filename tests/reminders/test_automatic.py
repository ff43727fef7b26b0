"""The automatic SMS of a day: each type's recipients, never twice (rerun, crash half-way), the
arrears repeat interval, and missed days caught up in order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imali.clients.models import Client
from imali.loans.services import receipt_post
from imali.messaging.credits import credit_balance
from imali.messaging.models import MessageType, OutboxMessage, ProcessLog
from imali.reminders import services
from imali.reminders.models import DailyRun, RunKind
from tests import factories
from tests.reminders.conftest import first_due, local_at, make_borrower, make_loan, setup_automatic

pytestmark = pytest.mark.django_db


def _messages(entity, message_type=None):
    qs = OutboxMessage.objects.filter(entity=entity)
    if message_type:
        qs = qs.filter(message_type=message_type)
    return qs


def _arrears_book(entity, lender, product):
    """Four borrowers with the same first due date: one owing a whole instalment, one owing a few
    rand, one paid up to date, one deceased and owing."""
    owing = make_loan(entity, user=lender, product=product, principal="2000", instalments=3)
    due = first_due(owing)
    small = make_loan(entity, user=lender, product=product, principal="2000", instalments=3)
    paid = make_loan(entity, user=lender, product=product, principal="2000", instalments=3)
    dead = make_loan(entity, user=lender, product=product, principal="2000", instalments=3)
    first_amount = small.schedule.order_by("seq").first().amount
    receipt_post(entity=entity, actor=lender, loan=small, amount=first_amount - Decimal("10.00"), value_date=due,
                 payback_type="cash")
    receipt_post(entity=entity, actor=lender, loan=paid, amount=first_amount, value_date=due, payback_type="cash")
    Client.objects.filter(pk=dead.client_id).update(status="deceased")
    return due, owing, small, paid, dead


def test_arrears_go_to_clients_owing_at_least_the_minimum(entity, funded, lender, product):
    due, owing, small, paid, dead = _arrears_book(entity, lender, product)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("50.00"), arrears_repeat_days=7)
    day = due + dt.timedelta(days=2)
    run = services.automatic_run_day(entity=entity, business_date=day)
    assert run.finished_at is not None and run.error == ""
    sent = list(_messages(entity, MessageType.ARREARS))
    assert [m.client_id for m in sent] == [owing.client_id]
    message = sent[0]
    assert message.created_by_id is None  # "System"
    assert message.idempotency_key == f"auto:arrears:c{owing.client_id}:{due.isoformat()}:0"
    assert message.text == "Your loan is in arrears, please contact your microlender urgently."
    log = ProcessLog.objects.get(pk=run.results["arrears"]["process_log"])
    assert (log.kind, log.queued, log.actor_id) == ("automatic", 1, None)
    # Below the minimum (R10 owing), paid up, deceased: nobody else; the day before the due date nobody at all.
    _messages(entity).delete()
    DailyRun.objects.all().delete()
    assert services.automatic_run_day(entity=entity, business_date=due).results["arrears"]["queued"] == 0


def test_arrears_without_cellphone_are_counted_as_skipped(entity, funded, lender, product):
    borrower, _ = make_borrower(entity, cellphone="")
    loan = make_loan(entity, user=lender, product=product, client=borrower)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"))
    run = services.automatic_run_day(entity=entity, business_date=first_due(loan) + dt.timedelta(days=1))
    assert run.results["arrears"]["queued"] == 0
    assert run.results["arrears"]["skipped_reasons"] == {"no_cellphone": 1}


def test_arrears_repeat_after_the_interval_only(entity, funded, lender, product):
    loan = make_loan(entity, user=lender, product=product)
    due = first_due(loan)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), arrears_repeat_days=7)
    for offset in range(1, 16):  # fifteen daily runs in arrears
        services.automatic_run_day(entity=entity, business_date=due + dt.timedelta(days=offset))
    keys = sorted(_messages(entity, MessageType.ARREARS).values_list("idempotency_key", flat=True))
    # Days 1–7 of the arrears are the first reminder, 8–14 the second, 15 the third.
    assert keys == [f"auto:arrears:c{loan.client_id}:{due.isoformat()}:{n}" for n in range(3)]


def test_rerun_of_a_day_sends_nothing_again_and_costs_nothing(entity, funded, lender, product):
    due, owing, *_ = _arrears_book(entity, lender, product)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), birthday_enabled=True)
    day = due + dt.timedelta(days=3)
    services.automatic_run_day(entity=entity, business_date=day)
    count, balance = _messages(entity).count(), credit_balance(entity=entity)
    assert count == 2  # the owing client and the one owing R10
    assert services.automatic_run_day(entity=entity, business_date=day) is None  # finished: not claimed again
    DailyRun.objects.all().delete()  # even with the day's record gone, the outbox keys hold
    rerun = services.automatic_run_day(entity=entity, business_date=day)
    assert rerun.results["arrears"]["queued"] == 0
    assert rerun.results["arrears"]["skipped_reasons"] == {"already_queued": 2}
    assert (_messages(entity).count(), credit_balance(entity=entity)) == (count, balance)


class Crash(BaseException):
    """A kill (the process ends mid-run): not an Exception, so no handler of the run sees it."""


def test_a_run_that_dies_half_way_is_finished_by_the_next_once_its_lease_lapses(entity, funded, lender, product):
    loan = make_loan(entity, user=lender, product=product)
    due = first_due(loan)
    client = loan.client
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), birthday_enabled=True,
                    due_enabled=True, due_days_before=1)
    day = due + dt.timedelta(days=1)
    Client.objects.filter(pk=client.pk).update(date_of_birth=client.date_of_birth.replace(month=day.month, day=day.day),
                                                  marketing_consent=True)
    start = credit_balance(entity=entity)

    def crash_after_arrears(message_type):
        if message_type == MessageType.ARREARS:
            raise Crash("killed")

    with pytest.raises(Crash):
        services.automatic_run_day(entity=entity, business_date=day, after_each=crash_after_arrears)
    run = DailyRun.objects.get(entity=entity, kind=RunKind.AUTOMATIC, business_date=day)
    assert run.finished_at is None and run.lease_until is not None
    assert set(_messages(entity).values_list("message_type", flat=True)) == {"arrears"}
    # Another consumer now: the lease still holds, so it leaves the day alone.
    assert services.automatic_run_day(entity=entity, business_date=day) is None
    later = run.lease_until + dt.timedelta(seconds=1)
    done = services.automatic_run_day(entity=entity, business_date=day, now=later)
    assert done.finished_at is not None and done.attempts == 2
    assert sorted(_messages(entity).values_list("message_type", flat=True)) == ["arrears", "birthday"]
    used = sum(_messages(entity).values_list("credits", flat=True))
    assert credit_balance(entity=entity) == start - used


def test_payment_due_reminder_n_days_before(entity, funded, lender, product):
    loan = make_loan(entity, user=lender, product=product)
    other, _ = make_borrower(entity, payment_day=15)
    later = make_loan(entity, user=lender, product=product, client=other)
    due = first_due(loan)
    assert first_due(later) != due
    setup_automatic(entity, due_enabled=True, due_days_before=3)
    services.automatic_run_day(entity=entity, business_date=due - dt.timedelta(days=3))
    sent = list(_messages(entity, MessageType.PAYMENT_DUE))
    assert [m.client_id for m in sent] == [loan.client_id]
    amount = loan.schedule.order_by("seq").first().amount
    assert f"{entity.currency} {amount:,.2f}" in sent[0].text and due.isoformat() in sent[0].text
    assert sent[0].idempotency_key == f"auto:payment_due:c{loan.client_id}:{due.isoformat()}"


def test_payment_received_goes_to_good_clients_once_per_receipt(entity, funded, lender, product):
    from imali.loans.services import local_today, receipt_reverse

    good = make_loan(entity, user=lender, product=product)
    bad = make_loan(entity, user=lender, product=product)
    reversed_ = make_loan(entity, user=lender, product=product)
    day = local_today(entity)
    first = receipt_post(entity=entity, actor=lender, loan=good, amount="100.00", value_date=day, payback_type="cash")
    receipt_post(entity=entity, actor=lender, loan=bad, amount="100.00", value_date=day, payback_type="cash")
    Client.objects.filter(pk=bad.client_id).update(status="bad", new_loans_allowed=False)
    gone = receipt_post(entity=entity, actor=lender, loan=reversed_, amount="100.00", value_date=day, payback_type="cash")
    receipt_reverse(actor=lender, receipt=gone, reason="bounced")
    setup_automatic(entity, received_enabled=True)
    services.automatic_run_day(entity=entity, business_date=day)
    sent = list(_messages(entity, MessageType.PAYMENT_RECEIVED).values_list("client_id", "idempotency_key"))
    assert sent == [(good.client_id, f"auto:payment_received:r{first.pk}")]


def test_payment_received_reaches_receipts_captured_after_the_days_run(entity, funded, lender, product):
    """Regression: the run of day D selected receipts value-dated D only, so a receipt captured
    after D's run (or back-dated to an earlier day) was never messaged."""
    from imali.loans.services import local_today

    loan = make_loan(entity, user=lender, product=product)
    today = local_today(entity)
    setup_automatic(entity, received_enabled=True)
    services.automatic_run_day(entity=entity, business_date=today - dt.timedelta(days=1))
    # Captured after yesterday's run: one value-dated yesterday, one back-dated two days.
    late = receipt_post(entity=entity, actor=lender, loan=loan, amount="100.00", value_date=today - dt.timedelta(days=1),
                        payback_type="cash")
    back = receipt_post(entity=entity, actor=lender, loan=loan, amount="50.00", value_date=today - dt.timedelta(days=2),
                        payback_type="cash")
    old = receipt_post(entity=entity, actor=lender, loan=loan, amount="20.00", value_date=today - dt.timedelta(days=30),
                       payback_type="cash")
    run = services.automatic_run_day(entity=entity, business_date=today)
    keys = sorted(_messages(entity, MessageType.PAYMENT_RECEIVED).values_list("idempotency_key", flat=True))
    assert keys == sorted([f"auto:payment_received:r{late.pk}", f"auto:payment_received:r{back.pk}"])
    assert f"auto:payment_received:r{old.pk}" not in keys  # outside the window: not thanked a month late
    assert run.results["payment_received"]["queued"] == 2
    # The next day's run sends none of them again (and the query leaves them out: nothing skipped).
    again = services.automatic_run_day(entity=entity, business_date=today + dt.timedelta(days=1))
    assert again.results["payment_received"]["queued"] == 0
    assert _messages(entity, MessageType.PAYMENT_RECEIVED).count() == 2


def test_birthdays_of_the_day_and_29_february(entity, funded):
    from tests import factories

    def born(day, **fields):
        client = factories.make_client(entity=entity)
        fields.setdefault("marketing_consent", True)  # a greeting is direct marketing: only with consent
        Client.objects.filter(pk=client.pk).update(date_of_birth=day, **fields)  # the ID number's date aside
        return client

    today = born(dt.date(1980, 2, 28))
    leap = born(dt.date(1992, 2, 29))
    born(dt.date(1980, 3, 1))
    born(dt.date(1980, 2, 28), status="deceased")
    born(dt.date(1980, 2, 28), marketing_consent=False)  # never agreed to marketing: no greeting
    setup_automatic(entity, birthday_enabled=True)
    services.automatic_run_day(entity=entity, business_date=dt.date(2027, 2, 28))  # not a leap year
    assert sorted(_messages(entity, MessageType.BIRTHDAY).values_list("client_id", flat=True)) == sorted([today.pk, leap.pk])
    _messages(entity).delete()
    services.automatic_run_day(entity=entity, business_date=dt.date(2028, 2, 28))  # leap year: the 29th has its day
    assert list(_messages(entity, MessageType.BIRTHDAY).values_list("client_id", flat=True)) == [today.pk]
    message = _messages(entity, MessageType.BIRTHDAY).get()
    assert message.idempotency_key == f"auto:birthday:c{today.pk}:2028"


def test_missed_days_are_caught_up_in_order(entity, funded, lender, product):
    loan = make_loan(entity, user=lender, product=product)
    due = first_due(loan)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), arrears_repeat_days=1,
                    run_at=dt.time(8, 0))
    first_day = due + dt.timedelta(days=1)
    services.automatic_run_day(entity=entity, business_date=first_day)
    today = first_day + dt.timedelta(days=4)
    # 07:00 local: today's time has not come, so the three days in between are due, oldest first.
    early = local_at(entity, today, 7)
    assert [d for k, e, d in services.runs_due(early) if k == RunKind.AUTOMATIC] == [
        first_day + dt.timedelta(days=n) for n in (1, 2, 3)]
    runs = services.runs_due_execute(local_at(entity, today, 8, 5))
    assert [r.business_date for r in runs] == [first_day + dt.timedelta(days=n) for n in (1, 2, 3, 4)]
    finished = list(DailyRun.objects.filter(entity=entity, kind=RunKind.AUTOMATIC).order_by("finished_at", "id")
                    .values_list("business_date", flat=True))
    assert finished == [first_day + dt.timedelta(days=n) for n in range(5)]
    # Repeat interval 1: one reminder per day of arrears, none twice.
    assert _messages(entity, MessageType.ARREARS).count() == 5
    assert services.runs_due(local_at(entity, today, 9)) == []


def test_caught_up_days_send_no_stale_due_reminders_or_birthdays(entity, funded, lender, product):
    """Regression: replaying a missed day sent "your payment is due on <a past date>" and
    birthday greetings days late."""
    loan = make_loan(entity, user=lender, product=product)
    due = first_due(loan)
    setup_automatic(entity, due_enabled=True, due_days_before=1, birthday_enabled=True, run_at=dt.time(8, 0))
    last_run = due - dt.timedelta(days=2)
    services.automatic_run_day(entity=entity, business_date=last_run)
    birthday = due  # a missed day
    Client.objects.filter(pk=loan.client_id).update(date_of_birth=dt.date(1980, birthday.month, birthday.day),
                                                          marketing_consent=True)
    today = last_run + dt.timedelta(days=4)
    runs = {r.business_date: r for r in services.runs_due_execute(local_at(entity, today, 9))}
    assert sorted(runs) == [last_run + dt.timedelta(days=n) for n in (1, 2, 3, 4)]
    assert not _messages(entity, MessageType.PAYMENT_DUE).exists()
    assert not _messages(entity, MessageType.BIRTHDAY).exists()
    reminder_day = runs[due - dt.timedelta(days=1)]
    assert reminder_day.finished_at is not None and reminder_day.error == ""
    assert reminder_day.results["payment_due"]["skipped_reasons"] == {"stale_on_catch_up": 1}
    log = ProcessLog.objects.get(pk=reminder_day.results["payment_due"]["process_log"])
    assert (log.queued, log.skipped_reasons) == (0, {"stale_on_catch_up": 1}) and due.isoformat() in log.errors[0]
    assert runs[birthday].results["birthday"]["skipped_reasons"] == {"stale_on_catch_up": 1}
    # Today's own run is not a catch-up: a birthday today is greeted.
    Client.objects.filter(pk=loan.client_id).update(date_of_birth=dt.date(1980, today.month, today.day))
    DailyRun.objects.filter(business_date=today).delete()
    services.runs_due_execute(local_at(entity, today, 9))
    assert _messages(entity, MessageType.BIRTHDAY).count() == 1


def test_a_failed_day_holds_back_the_days_after_it(entity, operator, lender, product):
    loan = make_loan(entity, user=lender, product=product)  # no credits bought
    due = first_due(loan)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), run_at=dt.time(8, 0))
    day = due + dt.timedelta(days=1)
    services.automatic_run_day(entity=entity, business_date=day - dt.timedelta(days=1))
    runs = services.runs_due_execute(local_at(entity, day + dt.timedelta(days=1), 9))
    assert [(r.business_date, r.finished_at) for r in runs] == [(day, None)]
    assert "credits" in runs[0].error.lower()


def test_a_type_switched_off_is_left_out_and_counted(entity, funded, lender, product, admin_user):
    from imali.messaging.policy import message_type_set_enabled

    loan = make_loan(entity, user=lender, product=product)
    message_type_set_enabled(actor=admin_user, entity=entity, message_type=MessageType.ARREARS, enabled=False)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), birthday_enabled=True)
    day = first_due(loan) + dt.timedelta(days=1)
    Client.objects.filter(pk=loan.client_id).update(date_of_birth=dt.date(1980, day.month, day.day), marketing_consent=True)
    run = services.automatic_run_day(entity=entity, business_date=day)
    assert run.finished_at is not None and run.error == ""
    assert run.results["arrears"]["disabled"] is True
    log = ProcessLog.objects.get(pk=run.results["arrears"]["process_log"])
    assert (log.queued, log.skipped, log.skipped_reasons) == (0, 1, {"type_disabled": 1})
    assert list(_messages(entity).values_list("message_type", flat=True)) == ["birthday"]


def test_the_demo_switches_everything_on_once(entity):
    from imali.reminders.demo import demo_switch_on
    from imali.reminders.models import MisRecipient, MisSetup
    from imali.tenancy.models import Role

    Role.objects.get(entity=entity, name="Administrator").users.add(factories.make_admin(entity=entity))
    manager = factories.make_user(entity=entity)
    manager.email = "manager@demo.example"
    manager.save()
    assert demo_switch_on([entity]) is True
    setup = services.automatic_setup_get(entity=entity)
    assert setup.due_enabled and setup.arrears_enabled and setup.received_enabled and setup.birthday_enabled
    assert MisSetup.objects.get(entity=entity).any_enabled
    assert set(MisRecipient.objects.values_list("user_id", flat=True)) == {manager.pk}
    assert demo_switch_on([entity]) is False


def test_a_days_queries_do_not_grow_with_the_clients(entity, funded, lender, product):
    """Every type of the day (payment due, arrears, payment received, birthdays, with loan merge
    fields) is read set-based: the same number of queries for one client of each type as for four.
    A per-client read (an N+1) on a 1M-client book would make the day take hours."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imali.loans.services import local_today
    from imali.messaging.services import template_update

    for message_type in (MessageType.ARREARS, MessageType.PAYMENT_DUE, MessageType.PAYMENT_RECEIVED):
        template_update(actor=lender, entity=entity, message_type=message_type,
                        text="Dear {^Client Name^} pay {^Next Amount Due^} by {^Next Date Due^} or settle "
                             "{^Client Total Settlement Amount^} today, call {^Branch Telephone^}")
    today = local_today(entity)

    def borrow():
        loan = make_loan(entity, user=lender, product=product)
        receipt_post(entity=entity, actor=lender, loan=loan, amount="10.00", value_date=today, payback_type="cash")
        return loan

    loans = [borrow()]
    due = first_due(loans[0])
    day = due + dt.timedelta(days=1)  # the first instalment in arrears
    second_due = loans[0].schedule.order_by("seq").values_list("due_date", flat=True)[1]
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), due_enabled=True,
                    due_days_before=(second_due - day).days, received_enabled=True, birthday_enabled=True)

    def day_queries() -> tuple[int, dict]:
        Client.objects.filter(entity=entity).update(date_of_birth=dt.date(1980, day.month, day.day),
                                                    marketing_consent=True)
        OutboxMessage.objects.filter(entity=entity).delete()
        DailyRun.objects.all().delete()
        with CaptureQueriesContext(connection) as captured:
            run = services.automatic_run_day(entity=entity, business_date=day)
        return len(captured.captured_queries), {k: v.get("queued") for k, v in run.results.items()}

    one, queued_one = day_queries()
    assert queued_one == {"payment_due": 1, "arrears": 1, "payment_received": 1, "birthday": 1}
    loans += [borrow() for _ in range(3)]
    four, queued_four = day_queries()
    assert queued_four == {"payment_due": 4, "arrears": 4, "payment_received": 4, "birthday": 4}
    assert four == one
