"""Two consumers on the same day at once on PostgreSQL: each message goes once."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import Count

from imali.clients.models import Client
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.models import MessageType, OutboxMessage
from imali.reminders import services
from imali.reminders.models import DailyRun
from tests import factories
from tests.reminders.conftest import first_due, make_loan, make_product, setup_automatic

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def book():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent consumers need separate connections to a server database; runs on PostgreSQL")
    entity = factories.make_entity(country="ZA")
    operator = factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10_000)
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    product = make_product(entity)
    loans = [make_loan(entity, user=user, product=product) for _ in range(6)]
    due = first_due(loans[0])
    day = due + dt.timedelta(days=2)
    # Half of them born on the day: a second type in the same run.
    Client.objects.filter(pk__in=[loan.client_id for loan in loans[:3]]).update(date_of_birth=dt.date(1980, day.month, day.day),
                                                                              marketing_consent=True)
    setup_automatic(entity, arrears_enabled=True, arrears_minimum=Decimal("1.00"), birthday_enabled=True,
                    due_enabled=True, due_days_before=1)
    return entity, day


def _each_once(entity) -> None:
    doubles = (OutboxMessage.objects.filter(entity=entity).values("client_id", "message_type")
               .annotate(n=Count("id")).filter(n__gt=1))
    assert list(doubles) == []


def test_four_consumers_on_one_day_send_each_message_once(book):
    entity, day = book
    start = credit_balance(entity=entity)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def consume():
        try:
            barrier.wait()
            run = services.automatic_run_day(entity=entity, business_date=day)
            outcomes.append("ran" if run is not None else "left alone")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["left alone"] * 3 + ["ran"]
    assert OutboxMessage.objects.filter(entity=entity, message_type=MessageType.ARREARS).count() == 6
    assert OutboxMessage.objects.filter(entity=entity, message_type=MessageType.BIRTHDAY).count() == 3
    _each_once(entity)
    used = sum(OutboxMessage.objects.filter(entity=entity).values_list("credits", flat=True))
    assert credit_balance(entity=entity) == start - used
    assert DailyRun.objects.get(entity=entity, business_date=day).finished_at is not None


def test_a_consumer_taken_for_dead_and_its_successor_overlap_without_doubles(book):
    """The first consumer stalls past its lease; a second takes the day over while the first wakes
    and carries on: both write the same keys at the same time, the outbox takes each once."""
    entity, day = book
    start = credit_balance(entity=entity)
    barrier = threading.Barrier(2)
    claimed = threading.Event()
    now = dt.datetime.now(dt.UTC)
    results: list[object] = []

    def first():
        try:
            def stall(message_type):
                if message_type == MessageType.PAYMENT_DUE:
                    claimed.set()
                    barrier.wait()

            results.append(services.automatic_run_day(entity=entity, business_date=day, now=now, after_each=stall))
        finally:
            connections.close_all()

    def second():
        try:
            claimed.wait(30)
            barrier.wait()
            results.append(services.automatic_run_day(entity=entity, business_date=day,
                                                      now=now + services.LEASE + dt.timedelta(minutes=1)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results) and len(results) == 2  # both really ran the day
    assert OutboxMessage.objects.filter(entity=entity, message_type=MessageType.ARREARS).count() == 6
    assert OutboxMessage.objects.filter(entity=entity, message_type=MessageType.BIRTHDAY).count() == 3
    _each_once(entity)
    used = sum(OutboxMessage.objects.filter(entity=entity).values_list("credits", flat=True))
    assert credit_balance(entity=entity) == start - used
