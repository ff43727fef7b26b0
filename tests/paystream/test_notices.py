"""The client's SMS on a declined or returned debit, through the real collection-result path (the
peer's results feed over loopback HTTP → collections_fetch → the outbox)."""

from __future__ import annotations

import datetime as dt

import pytest

from imali.messaging.credits import credits_assign
from imali.messaging.models import EntityMessageType, MessageType, OutboxMessage
from imali.messaging.services import template_update
from imali.paystream import services
from imali.paystream.models import CollectionKind, CollectionResult, StreamSettings
from tests import factories

from .conftest import active_loan_with_note


@pytest.fixture
def funded(ps_entity, operator):
    credits_assign(actor=operator, entity=ps_entity, channel="sms", amount=100)
    return ps_entity


def _switch(entity, on: bool) -> None:
    StreamSettings.objects.filter(entity=entity).update(decline_sms=on)


def _declined(entity, clerk, borrower, peer, reason="Insufficient Funds"):
    loan, note = active_loan_with_note(entity, clerk, borrower)
    first = [i for i in note.instalments.all() if i.action_date <= dt.date.today()][0]
    peer.preset_outcome(note.reference, first.seq, "failed", reason)
    return loan, note, first


def _notices(entity):
    return OutboxMessage.objects.filter(entity=entity, message_type=MessageType.COLLECTION_FAILED)


def test_no_sms_unless_the_entity_switched_it_on(funded, clerk, borrower, peer):
    _declined(funded, clerk, borrower, peer)
    assert services.collections_fetch(entity=funded, actor=clerk).declined == 1
    assert not _notices(funded).exists()


def test_a_decline_texts_the_client_once_with_the_template(funded, clerk, borrower, peer):
    admin = factories.make_admin(entity=funded)
    services.stream_settings_save(entity=funded, actor=admin, base_url=peer.base_url, username="lender",
                                  branch_code="HO", decline_sms=True)
    template_update(actor=admin, entity=funded, message_type=MessageType.COLLECTION_FAILED,
                    text="Dear {^Client Name^} we could not collect your instalment. {^Legal Entity Name^}")
    loan, note, first = _declined(funded, clerk, borrower, peer)
    assert services.collections_fetch(entity=funded, actor=clerk).declined == 1
    decline = CollectionResult.objects.get(entity=funded, kind=CollectionKind.FAILED)
    sms = _notices(funded).get()
    assert sms.client == borrower and sms.number == borrower.cellphone
    assert sms.idempotency_key == f"paystream-collection:{funded.pk}:{decline.reference}"
    assert sms.text == (f"Dear {borrower.name or borrower.full_names.split(' ')[0]} we could not collect your instalment. "
                        f"{funded.name} {funded.currency} {first.amount:,.2f} for loan {loan.pk} on "
                        f"{first.action_date.isoformat()} was declined: Insufficient Funds.")
    # The same result again (the feed re-read from the start): no second SMS, no second charge.
    StreamSettings.objects.filter(entity=funded).update(collections_after=0)
    assert services.collections_fetch(entity=funded, actor=clerk).repeated >= 1
    assert _notices(funded).count() == 1


def test_an_unpaid_texts_the_client(funded, clerk, borrower, peer):
    _switch(funded, True)
    loan, note = active_loan_with_note(funded, clerk, borrower)
    services.collections_fetch(entity=funded, actor=clerk)
    assert not _notices(funded).exists()  # collections themselves send nothing here
    collected = CollectionResult.objects.filter(entity=funded, kind=CollectionKind.COLLECTED).order_by("id").first()
    peer.unpaid(collected.reference, "Account closed")
    assert services.collections_fetch(entity=funded, actor=clerk).returned == 1
    sms = _notices(funded).get()
    assert sms.text.endswith(f"for loan {loan.pk} on {dt.date.today().isoformat()} was returned unpaid: Account closed.")


def test_the_type_switched_off_or_no_credits_never_stops_the_import(funded, clerk, borrower, peer):
    _switch(funded, True)
    EntityMessageType.objects.create(entity=funded, message_type=MessageType.COLLECTION_FAILED, enabled=False)
    _declined(funded, clerk, borrower, peer)
    summary = services.collections_fetch(entity=funded, actor=clerk)
    assert summary.declined == 1 and CollectionResult.objects.filter(entity=funded, kind=CollectionKind.FAILED).exists()
    assert not _notices(funded).exists()
