"""A burst of mobile-originated messages stored in one go (`inbound_receive_many`, what a receiving
pass does): matched to the same lender, client and user as one at a time, in a few statements
whatever the burst's size, a provider id stored once, STOP still an opt-out, and every new message
handed to the batch handlers once."""

import itertools
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.messaging import inbound
from imali.messaging.credits import credits_assign
from imali.messaging.inbound import _match, inbound_receive_many
from imali.messaging.models import InboundMessage, MarketingOptOut, MessageType
from imali.messaging.services import message_enqueue
from tests import factories

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)


def events(numbers, text="hello"):
    return [SimpleNamespace(gateway="g", provider_id=f"p{next(_ids)}", number=n, to_address="Imali", text=text)
            for n in numbers]


@pytest.fixture
def numbers(entity, operator):
    """A number each way `_match` finds its owner: the last lender that messaged it (whose client
    it is), a client of one lender only, a user, nobody."""
    other_entity = factories.make_entity(country="ZA")
    credits_assign(actor=operator, entity=other_entity, channel="sms", amount=10)
    shared = "+27825551001"
    factories.make_client(entity=entity, cellphone=shared)
    other_client = factories.make_client(entity=other_entity, cellphone=shared)
    message_enqueue(entity=other_entity, number=shared, text="Hi", message_type=MessageType.REPLY,
                    idempotency_key="k1", client=other_client)
    only_client = "+27825551002"
    factories.make_client(entity=entity, cellphone=only_client)
    staff = "+27825551003"
    user = factories.make_user(entity=entity)
    user.cellphone = staff
    user.save()
    return [shared, only_client, staff, "+27825551004"]


def test_matched_as_one_at_a_time(numbers):
    stored = {m.number: m for m in inbound_receive_many(events(numbers))}
    assert len(stored) == 4
    for number in numbers:
        m = stored[number]
        assert (m.entity_id, m.client_id, m.user_id) == _match(number), number


def test_statements_do_not_grow_with_the_burst(numbers):
    with CaptureQueriesContext(connection) as small:
        inbound_receive_many(events(numbers[:2]))
    with CaptureQueriesContext(connection) as large:
        inbound_receive_many(events(numbers * 5))
    assert len(large) <= len(small) + 1 <= 13  # + the users' look-up, which the small burst did not need; SMS banking masks what may carry a PIN on receipt (the lender's aliases, one UPDATE)


def test_the_same_ids_again_store_nothing_and_stop_opts_out(entity, numbers):
    burst = events(numbers[:2]) + events([numbers[1]], text="STOP")
    assert len(inbound_receive_many(burst)) == 3
    assert inbound_receive_many(burst) == []
    assert InboundMessage.objects.count() == 3
    assert MarketingOptOut.objects.filter(entity=entity, number=numbers[1]).exists()


def test_batch_handlers_get_each_new_message_once(numbers, monkeypatch):
    seen = []
    monkeypatch.setattr(inbound, "INBOUND_BATCH_HANDLERS", [lambda messages: seen.extend(m.pk for m in messages)])
    burst = events(numbers)
    inbound_receive_many(burst)
    inbound_receive_many(burst)
    assert sorted(seen) == sorted(InboundMessage.objects.values_list("pk", flat=True)) and len(seen) == 4
