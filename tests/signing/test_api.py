"""The signing API: enrol, send, verify, hand, override, mandate, signature, check, reports."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from imali.signing.models import Challenge

from .conftest import code_sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(officer):
    client = APIClient()
    client.force_login(officer)
    return client


def test_enrol_and_sign_through_the_api(api, setup, borrower, application):
    sent = api.post(f"/api/signing/clients/{borrower.pk}/enrolment/send/")
    assert sent.status_code == 201, sent.json()
    challenge = Challenge.objects.get(public_id=sent.json()["challenge"])
    assert set(sent.json()) == {"challenge", "purpose", "cellphone", "expires_at", "tries_left"}
    enrolled = api.post(f"/api/signing/clients/{borrower.pk}/enrolment/verify/",
                        {"challenge": challenge.public_id, "code": code_sent(challenge)}, format="json")
    assert enrolled.status_code == 201 and enrolled.json()["cellphone"] == borrower.cellphone

    state = api.get(f"/api/signing/loans/{application.pk}/signing/").json()
    assert state["requirement"] == "otp_required" and state["signature"] is None and len(state["terms_digest"]) == 64
    sent = api.post(f"/api/signing/loans/{application.pk}/signing/send/")
    challenge = Challenge.objects.get(public_id=sent.json()["challenge"])
    wrong = api.post(f"/api/signing/loans/{application.pk}/signing/verify/",
                     {"challenge": challenge.public_id, "code": "123"}, format="json")
    assert wrong.status_code == 400 and wrong.json() == {"code": ["The code is not correct. 4 tries left."]}
    signed = api.post(f"/api/signing/loans/{application.pk}/signing/verify/",
                      {"challenge": challenge.public_id, "code": code_sent(challenge)}, format="json")
    assert signed.status_code == 201 and signed.json()["method"] == "otp"
    signature_id = signed.json()["id"]
    pdf = api.get(f"/api/signing/signatures/{signature_id}/agreement.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    check = api.post(f"/api/signing/signatures/{signature_id}/check/",
                     {"document": SimpleUploadedFile("a.pdf", pdf.content, content_type="application/pdf")},
                     format="multipart")
    assert check.status_code == 200 and check.json()["matches"] is True
    check = api.post(f"/api/signing/signatures/{signature_id}/check/",
                     {"document": SimpleUploadedFile("a.pdf", pdf.content[:-1], content_type="application/pdf")},
                     format="multipart")
    assert check.json()["matches"] is False


def test_checking_a_document_needs_a_file_of_a_sane_size(api, setup, officer, application):
    from imali.api.endpoints import signing as signing_api
    from imali.signing import services

    signature = services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    url = f"/api/signing/signatures/{signature.pk}/check/"
    as_text = api.post(url, {"document": "not a file"}, format="multipart")  # was an AttributeError: a 500
    assert as_text.status_code == 400 and as_text.json() == {"document": ["Upload the PDF to check, as a file."]}
    assert api.post(url, {}, format="multipart").status_code == 400
    big = b"%PDF" + b"0" * signing_api.MAX_CHECKED_DOCUMENT_BYTES
    too_big = api.post(url, {"document": SimpleUploadedFile("a.pdf", big, content_type="application/pdf")}, format="multipart")
    assert too_big.status_code == 400 and "larger than 20 MB" in too_big.json()["document"][0]


def test_the_enrolments_are_the_plain_list_their_schema_says(api, setup, borrower):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/signing/clients/{client_id}/enrolments/"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert not {"limit", "offset"} & {parameter["name"] for parameter in operation.get("parameters", [])}
    listed = api.get(f"/api/signing/clients/{borrower.pk}/enrolments/")
    assert listed.status_code == 200 and listed.json() == []


def test_override_send_and_override_with_the_authorisers_code(api, setup, supervisor, borrower, application):
    from imali.signing import services

    challenge = services.enrolment_send(actor=supervisor, entity=setup.entity, client=borrower)
    services.enrolment_verify(actor=supervisor, entity=setup.entity, client=borrower,
                              challenge_id=challenge.public_id, code=code_sent(challenge))
    refused = api.post(f"/api/signing/loans/{application.pk}/signing/hand/")
    assert refused.status_code == 400 and "loan" in refused.json()
    sent = api.post(f"/api/signing/loans/{application.pk}/signing/override/send/", {"authoriser": "supervisor"}, format="json")
    assert sent.status_code == 201 and sent.json()["cellphone"] == supervisor.cellphone
    challenge = Challenge.objects.get(public_id=sent.json()["challenge"])
    done = api.post(f"/api/signing/loans/{application.pk}/signing/override/",
                    {"authoriser": "supervisor", "reason": "lost phone", "challenge": challenge.public_id,
                     "code": code_sent(challenge)}, format="json")
    assert done.status_code == 201, done.json()
    assert done.json()["method"] == "override" and done.json()["authorised_by"] == "supervisor"


def test_mandate_through_the_api(api, setup, borrower, application):
    created = api.post(f"/api/signing/loans/{application.pk}/mandates/",
                       {"kind": "debicheck", "collection_day": 25, "account": borrower.accounts.first().pk}, format="json")
    assert created.status_code == 201, created.json()
    mandate_id = created.json()["id"]
    state = api.get(f"/api/signing/mandates/{mandate_id}/signing/").json()
    assert state["requirement"] == "hand"
    signed = api.post(f"/api/signing/mandates/{mandate_id}/signing/hand/")
    assert signed.status_code == 201 and signed.json()["mandate"] == mandate_id


def test_reports_through_the_api(client, admin, setup, officer, application):
    from imali.signing import services

    services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    api = APIClient()
    api.force_login(admin)
    contracts = api.get("/api/signing/reports/contracts/?method=hand&date_from=2020-01-01").json()
    assert contracts["count"] == 1 and contracts["results"][0]["loan"] == application.pk
    audit = api.get("/api/signing/reports/otp-audit/").json()
    assert any(row["action"] == "signing.signed_hand" for row in audit["results"])
    assert api.get("/api/signing/reports/logins/").status_code == 200
    assert api.get("/api/signing/reports/contracts/?date_from=yesterday").status_code == 400


def test_reports_and_setup_need_rights(api, setup):
    assert api.get("/api/signing/reports/contracts/").status_code == 403
    assert api.put("/api/signing/setup/", {"user_otp": True}, format="json").status_code == 403
