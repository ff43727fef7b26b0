"""Direct marketing is checked again when it is about to be sent, not only when it was queued:
CPA Regulation 4 hours and STOP replies (DOMAIN §5)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection

from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.dispatch import claim_batch
from imali.messaging.inbound import OPTED_OUT_ERROR, inbound_receive
from imali.messaging.models import CreditEntry, MarketingOptOut, OutboxMessage
from imali.messaging.services import message_enqueue
from imali.tenancy.models import Entity
from tests import factories

JHB = zoneinfo.ZoneInfo("Africa/Johannesburg")


def local(y, m, d, hh, mm):
    return dt.datetime(y, m, d, hh, mm, tzinfo=JHB)


FRIDAY_1950 = local(2026, 12, 4, 19, 50)
FRIDAY_2001 = local(2026, 12, 4, 20, 1)
SATURDAY_0900 = local(2026, 12, 5, 9, 0)


def enqueue(entity, key, *, message_type="crm", number="+27821234567", now=FRIDAY_1950, client=None):
    return message_enqueue(entity=entity, number=number, text="Our new branch is open", message_type=message_type,
                           idempotency_key=key, client=client, now=now)


# --- hours at send time ---------------------------------------------------------------------------

def test_marketing_queued_before_20h_and_claimed_after_is_held_not_sent(funded):
    crm = enqueue(funded, "crm1")
    notice = enqueue(funded, "arr1", message_type="arrears")
    balance = credit_balance(entity=funded)
    claimed = claim_batch(limit=10, lease_seconds=86400, now=FRIDAY_2001)
    # The account notice goes; the marketing waits for Saturday 09:00, not an attempt, lease freed.
    assert [c.id for c in claimed] == [notice.pk]
    crm.refresh_from_db()
    assert crm.status == "queued" and crm.attempts == 0 and crm.claimed_until is None
    assert crm.next_attempt_at == crm.scheduled_for == SATURDAY_0900
    assert credit_balance(entity=funded) == balance
    # Not due before then; claimed (and sendable) at 09:00.
    assert claim_batch(limit=10, lease_seconds=30, now=local(2026, 12, 5, 8, 59)) == []
    assert [c.id for c in claim_batch(limit=10, lease_seconds=30, now=SATURDAY_0900)] == [crm.pk]


def test_lapsed_lease_claimed_again_on_a_sunday_is_held_for_monday(funded):
    saturday = local(2026, 12, 5, 10, 0)
    crm = enqueue(funded, "crm2", now=saturday)
    assert [c.id for c in claim_batch(limit=10, lease_seconds=30, now=saturday)] == [crm.pk]
    # The consumer died; its lease lapses and another consumer claims the row on Sunday.
    assert claim_batch(limit=10, lease_seconds=30, now=local(2026, 12, 6, 10, 0)) == []
    crm.refresh_from_db()
    assert crm.status == "queued" and crm.attempts == 0 and crm.claimed_until is None
    assert crm.next_attempt_at == crm.scheduled_for == local(2026, 12, 7, 8, 0)


def test_a_batch_held_whole_does_not_hide_what_is_sendable_behind_it(funded):
    held = [enqueue(funded, f"crm-{i}", number=f"+278200000{i:02d}") for i in range(6)]
    notices = [enqueue(funded, f"arr-{i}", message_type="arrears", number=f"+278210000{i:02d}",
                       now=FRIDAY_1950 + dt.timedelta(minutes=1)) for i in range(2)]
    claimed = claim_batch(limit=3, lease_seconds=30, now=FRIDAY_2001)
    assert sorted(c.id for c in claimed) == sorted(m.pk for m in notices)
    assert set(OutboxMessage.objects.filter(pk__in=[m.pk for m in held]).values_list("scheduled_for", flat=True)) == {
        SATURDAY_0900}


def test_the_entity_zone_is_looked_up_once_per_run(funded, django_assert_max_num_queries):
    for i in range(5):
        enqueue(funded, f"crm-q{i}", number=f"+278300000{i:02d}")
    entities: dict = {}
    claim_batch(limit=1, lease_seconds=30, now=FRIDAY_1950, entities=entities)
    assert set(entities) == {funded.pk}
    # Inside the hours, a claim of marketing costs the claim (with its transaction and, on
    # PostgreSQL, its settings) and the
    # opt-out look-up only: the entity is not looked up again.
    with django_assert_max_num_queries(5) as queries:
        assert len(claim_batch(limit=10, lease_seconds=30, now=FRIDAY_1950, entities=entities)) == 4
    assert not [q for q in queries.captured_queries if Entity._meta.db_table in q["sql"]]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_postgresql_one_round_trip_claim_holds_marketing_and_keeps_its_cursor():
    if connection.vendor != "postgresql":
        pytest.skip("the one-round-trip claim and the claim cursor are PostgreSQL only")
    entity = factories.make_entity()
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    notices = [enqueue(entity, f"arr-{i}", message_type="arrears", number=f"+278400000{i:02d}") for i in range(4)]
    crm = enqueue(entity, "crm-pg", now=FRIDAY_1950 + dt.timedelta(minutes=1))
    first = claim_batch(limit=2, lease_seconds=30, now=FRIDAY_2001)
    assert [c.id for c in first] == [m.pk for m in notices[:2]] and all(c.message_type == "arrears" for c in first)
    last = first[-1]
    rest = claim_batch(limit=10, lease_seconds=30, now=FRIDAY_2001, after=(last.priority, last.due, last.id))
    assert [c.id for c in rest] == [m.pk for m in notices[2:]]
    crm.refresh_from_db()
    assert crm.status == "queued" and crm.scheduled_for == SATURDAY_0900 and crm.claimed_until is None


# --- STOP ------------------------------------------------------------------------------------------

def test_stop_cancels_queued_marketing_and_refunds_it(funded, sms_client):
    number = sms_client.cellphone
    sunday = local(2026, 12, 6, 10, 0)
    scheduled = enqueue(funded, "crm-s", number=number, now=sunday, client=sms_client)
    due = enqueue(funded, "bday-s", message_type="birthday", number=number, client=sms_client)
    notice = enqueue(funded, "arr-s", message_type="arrears", number=number, client=sms_client)
    other = enqueue(funded, "crm-other", number="+27829999999")
    before = credit_balance(entity=funded)
    message, _ = inbound_receive(gateway="local", provider_id="mo-stop", number=number, text="Stop")
    for m in (scheduled, due, notice, other):
        m.refresh_from_db()
    assert (scheduled.status, due.status) == ("cancelled", "cancelled")
    assert scheduled.error == due.error == OPTED_OUT_ERROR and scheduled.finished_at
    assert notice.status == "queued" and other.status == "queued"  # notices and other numbers are untouched
    assert credit_balance(entity=funded) == before + scheduled.credits + due.credits
    assert CreditEntry.objects.filter(entity=funded, kind="refund", reference=f"opt_out:{message.pk}").count() == 1


def test_stop_leaves_a_leased_message_to_its_consumer_which_cancels_it(funded, sms_client):
    number = sms_client.cellphone
    monday = local(2026, 12, 7, 10, 0)
    crm = enqueue(funded, "crm-l", number=number, now=monday)
    OutboxMessage.objects.filter(pk=crm.pk).update(claimed_until=dt.datetime(2999, 1, 1, tzinfo=dt.UTC))
    inbound_receive(gateway="local", provider_id="mo-stop2", number=number, text="STOP")
    crm.refresh_from_db()
    assert crm.status == "queued"


def test_claim_cancels_marketing_to_an_opted_out_number_and_refunds(funded):
    monday = local(2026, 12, 7, 10, 0)
    crm = enqueue(funded, "crm-o", number="+27825550000", now=monday)
    notice = enqueue(funded, "arr-o", message_type="arrears", number="+27825550000", now=monday)
    # Opted out after the message was queued, without the inbound path (a number answered on another channel).
    MarketingOptOut.objects.create(entity=funded, number="+27825550000")
    before = credit_balance(entity=funded)
    claimed = claim_batch(limit=10, lease_seconds=30, now=monday)
    assert [c.id for c in claimed] == [notice.pk]
    crm.refresh_from_db()
    assert crm.status == "cancelled" and crm.error == OPTED_OUT_ERROR
    assert credit_balance(entity=funded) == before + crm.credits
    assert CreditEntry.objects.filter(entity=funded, kind="refund", reference="dispatch:opted_out").exists()
