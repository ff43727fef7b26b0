"""Hostile input to the client-marketing API (the probes of a QA pass): a filter name that is not
a filter, and flags that are not JSON booleans. Each is a 400 naming the field; no data set is
recorded (a misspelt filter must not run over the whole book)."""

from __future__ import annotations

import pytest

from imali.marketing.models import DataSet
from imali.tenancy.rights import Right
from tests.api.conftest import signed_in  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(entity, signed_in):  # noqa: F811
    return signed_in(entity, [Right.CLIENT_MARKETING])


@pytest.mark.parametrize("body", [{"client_stauts": "active"}, {"colour": "red"}, {"months_outstanding": "all", "branchh": 1}])
def test_a_name_that_is_not_a_filter_is_a_400_naming_it(api, body):
    refused = api.post("/api/marketing/datasets/", body, format="json")
    assert refused.status_code == 400
    unknown = {k for k in body if k not in ("months_outstanding",)}
    assert set(refused.json()) == unknown
    assert refused.json()[next(iter(unknown))] == ["Not a filter of client marketing."]
    assert not DataSet.objects.exists()


def test_an_unknown_name_is_named_together_with_a_bad_filter(api):
    refused = api.post("/api/marketing/datasets/", {"colour": "red", "months_outstanding": "7"}, format="json")
    assert refused.status_code == 400 and set(refused.json()) == {"colour", "months_outstanding"}
    assert not DataSet.objects.exists()


@pytest.mark.parametrize("value", ["yes", 1, "true", "on", None])
def test_the_flags_are_json_booleans(api, value):
    for flag in ("calculate_settlement", "only_change_and_debt"):
        refused = api.post("/api/marketing/datasets/", {flag: value}, format="json")
        assert refused.status_code == 400 and set(refused.json()) == {flag}
    assert not DataSet.objects.exists()


def test_a_form_post_is_not_taken(api):
    # A form's "1" or "on" for a flag would be a guess: the API takes JSON bodies only.
    assert api.post("/api/marketing/datasets/", {"calculate_settlement": "on"}).status_code == 415
    assert not DataSet.objects.exists()


def test_json_booleans_are_taken(api, no_consent_needed):
    taken = api.post("/api/marketing/datasets/", {"calculate_settlement": True, "only_change_and_debt": False},
                     format="json")
    assert taken.status_code == 202 and taken.json()["filters"] == {"calculate_settlement": True}


def test_an_idempotency_key_used_for_another_send_is_refused_not_answered_with_that_send(entity, signed_in, book, funded,  # noqa: F811
                                                                                         no_consent_needed):
    from imali.marketing.models import MarketingSend
    from imali.marketing.services import custom_message_save, dataset_start
    from imali.messaging.models import OutboxMessage

    from .conftest import TODAY

    api = signed_in(entity, [Right.CLIENT_MARKETING, Right.MAXSMS_MESSAGE_SETUP])
    for _ in range(2):
        book.loan()
    first = dataset_start(actor=api.user, entity=entity, filters={}, as_of=TODAY, background=False)
    second = dataset_start(actor=api.user, entity=entity, filters={"calculate_settlement": True}, as_of=TODAY,
                           background=False)
    offer = custom_message_save(actor=api.user, entity=entity, channel="sms", name="Offer", text="Hello {^Client Name^} an offer")
    other = custom_message_save(actor=api.user, entity=entity, channel="sms", name="Other", text="Hi {^Client Name^} another")
    sent = api.post(f"/api/marketing/datasets/{first.pk}/send/", {"message": offer.pk, "idempotency_key": "k1"}, format="json")
    assert sent.status_code == 201
    queued = OutboxMessage.objects.count()
    row = first.rows.order_by("seq").first()
    for dataset, body in ((second, {"message": offer.pk}), (first, {"message": other.pk}),
                          (first, {"message": offer.pk, "rows": [row.pk]})):
        refused = api.post(f"/api/marketing/datasets/{dataset.pk}/send/", {**body, "idempotency_key": "k1"}, format="json")
        assert refused.status_code == 400 and set(refused.json()) == {"idempotency_key"}, body
    # The same send asked again is still answered with the send made (a retried call, a double click).
    again = api.post(f"/api/marketing/datasets/{first.pk}/send/", {"message": offer.pk, "idempotency_key": "k1"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == sent.json()["id"]
    assert MarketingSend.objects.count() == 1 and OutboxMessage.objects.count() == queued
