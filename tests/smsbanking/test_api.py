"""The SMS-banking API: PIN set (never echoed), field collections list, confirm and reject."""

import itertools

import pytest
from rest_framework.test import APIClient

from imali.messaging.inbound import inbound_receive
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import BankingPin, CollectionStatus, FieldCollection
from imali.tenancy.rights import Right
from tests import factories

from .conftest import OFFICER_PHONE

_ids = itertools.count(1)


@pytest.fixture
def api(manager):
    client = APIClient()
    client.force_authenticate(manager)
    return client


def test_pin_set_by_api_is_never_echoed(api, borrower, other_entity):
    response = api.post("/api/smsbanking/pins/", {"client": borrower.pk, "pin": "4826"}, format="json")
    assert response.status_code == 201 and "4826" not in response.content.decode()
    assert response.json()["set_via"] == "api" and BankingPin.objects.get(client=borrower).pin_hash.startswith("$argon2")
    response = api.post("/api/smsbanking/pins/", {"client": borrower.pk, "pin": "1111"}, format="json")
    assert response.status_code == 400 and "pin" in response.json()
    stranger = factories.make_client(entity=other_entity, cellphone="0811234567")
    response = api.post("/api/smsbanking/pins/", {"client": stranger.pk, "pin": "4826"}, format="json")
    assert response.status_code == 400 and "client" in response.json()


def test_collections_confirm_and_reject_by_api(api, bank, officer, borrower):
    loan_ids = sorted(borrower.loans.values_list("pk", flat=True))
    inbound_receive(gateway="api", provider_id="a1", number=OFFICER_PHONE, to_address="Imali",
                    text=f"PAY {borrower.number}/{loan_ids[0]} 40, {borrower.number}/{loan_ids[1]} 10")
    answer_pending()
    first, second = FieldCollection.objects.order_by("id")
    listing = api.get("/api/field-collections/?status=unverified").json()
    assert [row["id"] for row in listing["results"]] == [first.pk, second.pk]
    assert api.get("/api/field-collections/?status=nonsense").status_code == 400
    confirmed = api.post(f"/api/field-collections/{first.pk}/confirm/").json()
    assert confirmed["status"] == CollectionStatus.CONFIRMED and confirmed["receipt"]
    assert api.post(f"/api/field-collections/{first.pk}/confirm/").status_code == 400
    assert api.post(f"/api/field-collections/{second.pk}/reject/", {"reason": ""}, format="json").status_code == 400
    assert api.post(f"/api/field-collections/{second.pk}/reject/", {"reason": "No cash"}, format="json").json()["status"] == "rejected"


def test_api_needs_the_right_and_the_entity(bank, borrower, other_entity):
    clerk = APIClient()
    clerk.force_authenticate(factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS]))
    assert clerk.get("/api/field-collections/").status_code == 403
    assert clerk.post("/api/smsbanking/pins/", {"client": borrower.pk, "pin": "4826"}, format="json").status_code == 403
