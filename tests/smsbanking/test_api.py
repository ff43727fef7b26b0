"""The SMS-banking API: PIN set (never echoed), field collections and mobile-money SMS payment
notices: list, confirm and reject."""

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


NOTICE = "You have received PHP 150.00 from {phone}. Ref: GC{ref}"


def test_payment_notices_listed_confirmed_and_rejected_by_api(api, bank, manager, borrower, other_entity):
    """The notices that came by SMS: listed by status, confirmed (the receipt posted once, audited)
    or rejected with a reason; another lender's notice is not found; the right is needed."""
    from imali.core.models import AuditEntry
    from imali.loans.models import Receipt
    from imali.smsbanking import services
    from imali.smsbanking.models import ProviderPayment

    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    for ref, phone in (("778812", borrower.cellphone), ("778813", borrower.cellphone)):
        inbound_receive(gateway="api", provider_id=f"n{ref}", number="2882", to_address="Imali",
                        text=NOTICE.format(phone=phone, ref=ref))
    answer_pending()
    first, second = ProviderPayment.objects.order_by("reference")
    listing = api.get("/api/payment-notices/?status=unverified").json()
    assert [row["reference"] for row in listing["results"]] == ["GC778812", "GC778813"]
    assert listing["results"][0]["amount"] == "150.00" and listing["results"][0]["provider"] == "G-Cash"
    assert api.get("/api/payment-notices/?status=nonsense").status_code == 400
    # The borrower has two loans on the book: no single loan to post to, so confirming is refused
    # and names why; the notice can only be rejected.
    refused = api.post(f"/api/payment-notices/{first.pk}/confirm/")
    assert refused.status_code == 400 and "payment" in refused.json() and not Receipt.objects.exists()
    assert api.post(f"/api/payment-notices/{second.pk}/reject/", {"reason": ""}, format="json").status_code == 400
    rejected = api.post(f"/api/payment-notices/{second.pk}/reject/", {"reason": "Not on the statement"}, format="json")
    assert rejected.json()["status"] == "rejected" and rejected.json()["reject_reason"] == "Not on the statement"
    assert AuditEntry.objects.filter(action="smsbanking.provider_payment_rejected").count() == 1
    assert api.post(f"/api/payment-notices/{second.pk}/reject/", {"reason": "Again"}, format="json").status_code == 400
    assert api.get("/api/payment-notices/?status=rejected").json()["count"] == 1
    # Another lender's notice is not found; a user without 'Receipts: capture' is refused.
    other_admin = factories.make_admin(entity=other_entity)
    other = APIClient()
    other.force_authenticate(other_admin)
    assert other.get(f"/api/payment-notices/{first.pk}/").status_code == 404
    assert other.post(f"/api/payment-notices/{first.pk}/confirm/").status_code == 404
    clerk = APIClient()
    clerk.force_authenticate(factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS]))
    assert clerk.get("/api/payment-notices/").status_code == 403
    assert clerk.post(f"/api/payment-notices/{first.pk}/reject/", {"reason": "x"}, format="json").status_code == 403


def test_payment_notice_confirmed_by_api_posts_the_receipt_once(api, bank, manager, officer, product):
    from imali.core.models import AuditEntry
    from imali.loans.models import Receipt
    from imali.smsbanking import services
    from imali.smsbanking.models import ProviderPayment

    from .conftest import make_client, make_loan

    payer = make_client(bank, cellphone="+27825550166", name="Palesa", salesperson=officer,
                        id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    loan = make_loan(entity=bank, actor=manager, client=payer, product=product, principal="2000", days_ago=40)
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    inbound_receive(gateway="api", provider_id="n1", number="2882", to_address="Imali",
                    text=NOTICE.format(phone=payer.cellphone, ref="500001"))
    answer_pending()
    notice = ProviderPayment.objects.get()
    assert notice.loan_id == loan.pk and notice.status == CollectionStatus.UNVERIFIED
    confirmed = api.post(f"/api/payment-notices/{notice.pk}/confirm/")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    receipt = Receipt.objects.get(pk=confirmed.json()["receipt"])
    assert receipt.loan_id == loan.pk and str(receipt.amount) == "150.00"
    assert AuditEntry.objects.filter(action="smsbanking.provider_payment_confirmed").count() == 1
    assert api.post(f"/api/payment-notices/{notice.pk}/confirm/").status_code == 400
    assert Receipt.objects.count() == 1
