"""The mobile-money API: secrets never returned, suspense allocation, disbursement marking and
the send within/over the limit, rights and entity isolation of bodies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from imali.core.models import AuditEntry
from imali.loans.models import Receipt
from imali.mobilemoney.models import Disbursement, DisbursementStatus, StatementImport
from imali.mobilemoney.services import PaymentIn, payment_in_record, setup_save
from imali.tenancy.rights import Right
from tests import factories

from .conftest import offline_setup, open_loan
from .test_disbursements import approved_loan

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(entity, lender_user):
    # Nothing listens on port 9: a send here is "unavailable", which is what the over-limit case needs (nothing leaves).
    return offline_setup(entity, lender_user)


def test_providers_list_names_stored_secrets_without_values(api, setup):
    body = api.get("/api/mobile-money/providers/").json()
    assert body["results"][0]["secrets_stored"] == ["consumer_secret", "security_credential"]
    assert "the-secret" not in str(body) and "cred" not in str(body["results"][0].get("security_credential", ""))


def test_allocate_from_suspense_and_refuse_a_loan_of_another_entity(api, entity, lender_user, setup, other_entity):
    loan = open_loan(entity, lender_user)
    txn, _ = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="APISUSP001", amount=Decimal("30.00"), transacted_at=timezone.now(), account_reference="x"))
    listed = api.get("/api/mobile-money/payments/?status=suspense").json()
    assert [r["provider_transaction_id"] for r in listed["results"]] == ["APISUSP001"]
    their_admin = factories.make_admin(entity=other_entity)
    their_admin.disbursement_limit = Decimal("100000")
    their_admin.save()
    theirs = open_loan(other_entity, their_admin, cellphone="0811234567")
    refused = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": theirs.pk}, format="json")
    assert refused.status_code == 400 and "loan" in refused.json()
    done = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": loan.pk}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "allocated"
    again = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": loan.pk}, format="json")
    assert again.status_code == 400
    assert api.get("/api/mobile-money/payments/?status=nonsense").status_code == 400


def test_disbursement_marked_and_sent_over_the_limit_waits(api, entity, lender_user, setup):
    loan = approved_loan(entity, lender_user, principal="900")
    made = api.post("/api/mobile-money/disbursements/", {"loan": loan.pk}, format="json")
    assert made.status_code == 201 and made.json()["status"] == DisbursementStatus.PAYMENT_PENDING
    lender_user.disbursement_limit = Decimal("100")
    lender_user.save()
    batch = api.post("/api/mobile-money/disbursements/send/", format="json")
    assert batch.status_code == 201 and batch.json()["approved_by"] is None and batch.json()["total"] == "900.00"
    assert Disbursement.objects.get().status == DisbursementStatus.AWAITING_APPROVAL
    assert api.post(f"/api/mobile-money/batches/{batch.json()['id']}/approve/").status_code == 400


def test_rights(entity, setup):
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client = APIClient()
    client.force_authenticate(viewer)
    for url in ("/api/mobile-money/providers/", "/api/mobile-money/payments/", "/api/mobile-money/disbursements/",
                "/api/mobile-money/batches/", "/api/mobile-money/requests-to-pay/", "/api/mobile-money/statements/"):
        assert client.get(url).status_code == 403, url
    upload = SimpleUploadedFile("day.csv", b"Receipt No.,Completion Time,Paid In\n", content_type="text/csv")
    assert client.post("/api/mobile-money/statements/", {"setup": setup.pk, "file": upload}, format="multipart").status_code == 403
    assert not StatementImport.objects.exists()


def test_schema_documents_the_api_and_not_the_callbacks(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/mobile-money/disbursements/send/" in paths
    assert not [p for p in paths if "callbacks/mpesa" in p or "callbacks/momo" in p]


def test_no_loan_of_today_is_paid_in_the_future(entity, lender_user, setup):
    loan = open_loan(entity, lender_user)
    txn, _ = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="FUTURE0001", amount=Decimal("30.00"), account_reference=f"L{loan.pk}",
        transacted_at=timezone.now() + dt.timedelta(days=3)))
    assert txn.status == "suspense" and "future" in txn.suspense_reason


def _statement(loan, entity) -> bytes:
    import zoneinfo

    when = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y-%m-%d %H:%M:%S")
    return (f"Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info,A/C No.\n"
            f"AP00000001,{when},Completed,80.00,27821234567 - JANE,L{loan.pk}\n"
            f"AP00000002,{when},Completed,12.00,27821234567 - JANE,nobody\n"
            f"AP00000003,yesterday,Completed,12.00,27821234567 - JANE,L{loan.pk}\n").encode()


def test_statement_upload_preview_and_background_confirm(api, entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    upload = SimpleUploadedFile("day.csv", _statement(loan, entity), content_type="text/csv")
    made = api.post("/api/mobile-money/statements/", {"setup": setup.pk, "file": upload}, format="multipart")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["counts"] == {"matched": 1, "unmatched": 1, "recorded": 0, "invalid": 1, "skipped": 0}
    assert [(line["line"], line["kind"]) for line in body["lines"]] == [(3, "unmatched"), (4, "invalid")]
    assert "Completion time" in body["lines"][1]["note"] and body["statement"]["state"] == "preview"
    statement_id = body["statement"]["id"]
    assert AuditEntry.objects.filter(action="mobilemoney.statement_uploaded", subject="day.csv", actor=lender_user).exists()
    assert not Receipt.objects.exists()
    with django_capture_on_commit_callbacks(execute=False) as started:
        confirmed = api.post(f"/api/mobile-money/statements/{statement_id}/confirm/")
    assert confirmed.status_code == 202 and confirmed.json()["state"] == "queued" and not Receipt.objects.exists()
    assert api.post(f"/api/mobile-money/statements/{statement_id}/confirm/").status_code == 400  # started already
    started[0]()  # the consumer runs the import
    done = api.get(f"/api/mobile-money/statements/{statement_id}/").json()
    assert (done["state"], done["progress"], done["posted"], done["suspense"], done["invalid"]) == ("done", 3, 1, 1, 1)
    assert Receipt.objects.get(external_reference="AP00000001").loan_id == loan.pk
    assert AuditEntry.objects.filter(action="mobilemoney.statement_confirmed", actor=lender_user).exists()


def test_statement_upload_refuses_bad_input_naming_the_field(api, entity, lender_user, setup, other_entity):
    their_admin = factories.make_admin(entity=other_entity)
    theirs = setup_save(entity=other_entity, actor=their_admin, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600888", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:8000/"})
    loan = open_loan(entity, lender_user)

    def upload(name="day.csv", content=None, **extra):
        file = SimpleUploadedFile(name, _statement(loan, entity) if content is None else content)
        return api.post("/api/mobile-money/statements/", {"setup": setup.pk, "file": file, **extra}, format="multipart")

    other = api.post("/api/mobile-money/statements/", {"setup": theirs.pk, "file": SimpleUploadedFile(
        "day.csv", _statement(loan, entity))}, format="multipart")
    assert other.status_code == 400 and "setup" in other.json()
    assert "file" in api.post("/api/mobile-money/statements/", {"setup": setup.pk}, format="multipart").json()
    assert "file" in upload(name="day.pdf").json()
    assert "file" in upload(content=b"a,b\n1,2\n").json()
    assert "transaction_id" in upload(transaction_id="x" * 61).json()
    assert not StatementImport.objects.exists()
    # Another entity's import is not there to read or confirm.
    mine = upload().json()["statement"]["id"]
    their_api = APIClient()
    their_api.force_authenticate(their_admin)
    assert their_api.get(f"/api/mobile-money/statements/{mine}/").status_code == 404
    assert their_api.post(f"/api/mobile-money/statements/{mine}/confirm/").status_code == 404
    assert StatementImport.objects.get(pk=mine).state == "preview"
