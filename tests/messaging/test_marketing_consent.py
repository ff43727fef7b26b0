"""One consent rule for direct marketing (policy.consent_required), applied by every sender."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from imali.clients.models import Client
from imali.messaging.models import OutboxMessage, ProcessLog
from imali.messaging.policy import consent_required
from imali.messaging.services import (
    BulkRecipient,
    messages_enqueue_bulk,
    single_sms_preview,
    single_sms_send,
)
from imali.tenancy.models import Entity
from tests import factories


def codes(exc: ValidationError, field: str) -> list[str]:
    return [e.code for e in exc.error_dict[field]]


@pytest.mark.parametrize(("message_type", "needed"), [
    ("crm", True), ("marketing", True), ("birthday", True), ("arrears", False), ("otp", False), ("single", False)])
def test_consent_required_for_every_direct_marketing_type(entity, message_type, needed):
    assert consent_required(entity=entity, message_type=message_type) is needed
    Entity.objects.filter(pk=entity.pk).update(marketing_consent_not_required=True)
    entity.refresh_from_db()
    assert consent_required(entity=entity, message_type=message_type) is False


@pytest.mark.parametrize("template", ["crm", "marketing", "birthday"])
def test_single_sms_with_a_direct_marketing_template_needs_consent(funded, admin_user, sms_client, template):
    assert not sms_client.marketing_consent
    with pytest.raises(ValidationError) as exc:
        single_sms_preview(actor=admin_user, entity=funded, client=sms_client, template=template)
    assert codes(exc.value, "client") == ["no_marketing_consent"]
    with pytest.raises(ValidationError):
        single_sms_send(actor=admin_user, entity=funded, client=sms_client, idempotency_key=f"s-{template}",
                        template=template)
    assert not OutboxMessage.objects.exists()
    Client.objects.filter(pk=sms_client.pk).update(marketing_consent=True)
    sms_client.refresh_from_db()
    single_sms_preview(actor=admin_user, entity=funded, client=sms_client, template=template)


def test_bulk_direct_marketing_drops_clients_without_consent_in_one_query(funded, admin_user,
                                                                        django_assert_max_num_queries):
    agreed = [factories.make_client(entity=funded) for _ in range(3)]
    refused = [factories.make_client(entity=funded) for _ in range(4)]
    Client.objects.filter(pk__in=[c.pk for c in agreed]).update(marketing_consent=True)
    recipients = [BulkRecipient(f"birthday:d1:c{c.pk}", c.cellphone, {}, client_id=c.pk) for c in agreed + refused]
    # The automatic greetings and the batches both come through here: the skip costs one query,
    # however many recipients (the run's own queries aside).
    messages_enqueue_bulk(entity=funded, actor=None, message_type="birthday", text="Happy birthday",
                          recipients=recipients[:1])
    OutboxMessage.objects.all().delete()
    with django_assert_max_num_queries(60) as small:
        messages_enqueue_bulk(entity=funded, actor=None, message_type="birthday", text="Happy birthday",
                              recipients=recipients[:2])
    OutboxMessage.objects.all().delete()
    with django_assert_max_num_queries(len(small.captured_queries)):
        log = messages_enqueue_bulk(entity=funded, actor=None, message_type="birthday", text="Happy birthday",
                                    recipients=recipients)
    assert set(OutboxMessage.objects.values_list("client_id", flat=True)) == {c.pk for c in agreed}
    log = ProcessLog.objects.get(pk=log.pk)
    assert log.queued == 3 and log.skipped == 4 and log.skipped_reasons == {"no_marketing_consent": 4}


def test_bulk_account_notices_and_entities_needing_no_consent_skip_nobody(funded):
    client = factories.make_client(entity=funded)
    messages_enqueue_bulk(entity=funded, actor=None, message_type="arrears", text="Please pay",
                          recipients=[BulkRecipient(f"arrears:x:c{client.pk}", client.cellphone, {}, client_id=client.pk)])
    Entity.objects.filter(pk=funded.pk).update(marketing_consent_not_required=True)
    funded.refresh_from_db()
    messages_enqueue_bulk(entity=funded, actor=None, message_type="crm", text="Visit us",
                          recipients=[BulkRecipient(f"crm:x:c{client.pk}", client.cellphone, {}, client_id=client.pk)])
    assert sorted(OutboxMessage.objects.values_list("message_type", flat=True)) == ["arrears", "crm"]
