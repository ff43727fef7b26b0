"""The signing screens, driven through Django's test client: enrolment, signing with the code,
the agreement and its check, override, mandate, reports with CSV, the sign-in code step."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imali.signing.models import Challenge, Signature
from imali.signing.services import otp_setup_update

from .conftest import code_sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer_client(client, officer):
    client.force_login(officer)
    return client


def test_setup_screen_saves_and_refuses_both_switches(client, admin, funded):
    client.force_login(admin)
    url = reverse("web:signing_setup")
    data = {"enrol_client": "on", "loan_otp": "on", "esign_loan_otp": "on", "threshold": "500", "code_length": "6",
            "validity_minutes": "5", "tries_per_code": "5"}
    response = client.post(url, data)
    assert response.status_code == 400 and "may not both be on" in response.content.decode()
    data.pop("esign_loan_otp")
    assert client.post(url, data).status_code == 302
    assert funded.otp_setup.loan_otp and not funded.otp_setup.esign_loan_otp


def test_enrol_and_sign_a_loan_on_the_web(officer_client, setup, borrower, application):
    enrol_url = reverse("web:signing_enrolment", kwargs={"client_id": borrower.pk})
    assert officer_client.post(enrol_url, {"action": "send"}).status_code == 302
    challenge = Challenge.objects.get(subject_key=f"enrol:client:{borrower.pk}", status="pending")
    page = officer_client.get(enrol_url).content.decode()
    assert challenge.public_id in page
    response = officer_client.post(enrol_url, {"action": "verify", "challenge": challenge.public_id,
                                               "code": code_sent(challenge)})
    assert response.status_code == 302
    assert "Enrolled:" in officer_client.get(enrol_url).content.decode()

    loan_url = reverse("web:signing_loan", kwargs={"loan_id": application.pk})
    assert "must confirm with the OTP" in officer_client.get(loan_url).content.decode()
    officer_client.post(loan_url, {"action": "send"})
    challenge = Challenge.objects.get(subject_key=f"loan:{application.pk}", status="pending")
    wrong = officer_client.post(loan_url, {"action": "verify", "challenge": challenge.public_id, "code": "000001"})
    assert wrong.status_code == 400 and "tries left" in wrong.content.decode()
    assert "000001" not in wrong.content.decode()  # the typed code is not echoed back
    response = officer_client.post(loan_url, {"action": "verify", "challenge": challenge.public_id,
                                              "code": code_sent(challenge)})
    signature = Signature.objects.get(loan=application)
    assert response.status_code == 302 and response["Location"] == reverse("web:signing_signature",
                                                                          kwargs={"signature_id": signature.pk})
    page = officer_client.get(response["Location"]).content.decode()
    assert "Electronically signed on" in page and signature.document_sha256 in page
    pdf = officer_client.get(reverse("web:signing_signature_pdf", kwargs={"signature_id": signature.pk}))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content == bytes(signature.document_pdf)

    from django.core.files.uploadedfile import SimpleUploadedFile
    same = officer_client.post(response["Location"], {"document": SimpleUploadedFile("a.pdf", pdf.content)})
    assert "Yes: this PDF is" in same.content.decode()
    other = officer_client.post(response["Location"], {"document": SimpleUploadedFile("a.pdf", pdf.content + b"\n")})
    assert "No: this PDF is not" in other.content.decode()


def test_override_on_the_web(officer_client, setup, supervisor, borrower, application):
    from imali.signing import services

    challenge = services.enrolment_send(actor=supervisor, entity=setup.entity, client=borrower)
    services.enrolment_verify(actor=supervisor, entity=setup.entity, client=borrower,
                              challenge_id=challenge.public_id, code=code_sent(challenge))
    loan_url = reverse("web:signing_loan", kwargs={"loan_id": application.pk})
    bad = officer_client.post(loan_url, {"action": "override", "authoriser": "supervisor", "reason": "lost phone",
                                         "password": "nope"})
    assert bad.status_code == 400 and "password or code is not correct" in bad.content.decode()
    good = officer_client.post(loan_url, {"action": "override", "authoriser": "supervisor", "reason": "lost phone",
                                          "password": "supervisor-pass-123"})
    assert good.status_code == 302
    page = officer_client.get(good["Location"]).content.decode()
    assert "authorised by Sipho Supervisor" in page and "Overridden" in page


def test_mandate_on_the_web(officer_client, setup, borrower, application):
    url = reverse("web:signing_mandate_create", kwargs={"loan_id": application.pk})
    response = officer_client.post(url, {"kind": "seft", "collection_day": "25", "account": borrower.accounts.first().pk})
    assert response.status_code == 302
    page = officer_client.get(response["Location"]).content.decode()
    assert "not enrolled" in page
    response = officer_client.post(response["Location"], {"action": "hand"})
    assert response.status_code == 302
    assert Signature.objects.get(mandate__isnull=False).hand_reason == "not_enrolled"


def test_reports_and_csv(client, admin, setup, officer, borrower, application):
    from imali.signing import services

    services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    client.force_login(admin)
    page = client.get(reverse("web:signing_contracts")).content.decode()
    assert "Hand-signed: 1" in page and str(borrower.number) in page
    csv_response = client.get(reverse("web:signing_contracts") + "?export=csv")
    body = b"".join(csv_response.streaming_content).decode()
    assert body.splitlines()[0].startswith("Signed,Loan,Mandate") and borrower.id_number in body
    audit = b"".join(client.get(reverse("web:signing_otp_audit") + "?export=csv").streaming_content).decode()
    assert "Flagged for a hand signature" in audit
    assert client.get(reverse("web:signing_login_detail")).status_code == 200


def test_reports_need_their_rights(officer_client, setup):
    assert officer_client.get(reverse("web:signing_contracts")).status_code == 403
    assert officer_client.get(reverse("web:signing_login_detail")).status_code == 403
    assert officer_client.get(reverse("web:signing_setup")).status_code == 403


def test_login_otp_step(client, admin, setup, officer):
    from imali.web.views.signing import LOGIN_PENDING_CHALLENGE, LOGIN_PENDING_USER

    otp_setup_update(actor=admin, entity=setup.entity, data={"user_otp": True})
    from imali.signing import services

    challenge = services.login_otp_send(user=officer)
    session = client.session
    session[LOGIN_PENDING_USER] = officer.pk
    session[LOGIN_PENDING_CHALLENGE] = challenge.public_id
    session.save()
    url = reverse("web:signing_login_otp")
    assert "sent a code to your cellphone" in client.get(url).content.decode()
    assert client.get(reverse("web:signing_loans")).status_code == 302  # not signed in yet
    response = client.post(url, {"challenge": challenge.public_id, "code": code_sent(challenge)})
    assert response.status_code == 302
    assert client.get(reverse("web:signing_loans")).status_code == 200


def test_contracts_issued_exports_xlsx(client, admin, setup, officer, borrower, application):
    import io

    from openpyxl import load_workbook

    from imali.signing import services

    services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    client.force_login(admin)
    response = client.get(reverse("web:signing_contracts") + "?export=xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Signed" and rows[1][5] == borrower.id_number and len(rows) == 2
    audit = client.get(reverse("web:signing_otp_audit") + "?export=xlsx")
    assert audit["Content-Type"].startswith("application/vnd.openxmlformats")


def test_report_exports_write_typed_text_as_text_never_a_formula(client, admin, setup, officer, borrower, application):
    import io

    from openpyxl import load_workbook

    from imali.signing import services

    formula = '=HYPERLINK("http://evil.invalid","x")'
    type(borrower).objects.filter(pk=borrower.pk).update(full_names=formula, surname="@SUM(1+1)")
    services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    client.force_login(admin)
    body = b"".join(client.get(reverse("web:signing_contracts") + "?export=csv").streaming_content).decode()
    assert f"'{formula} @SUM(1+1)".replace('"', '""') in body
    book = load_workbook(io.BytesIO(client.get(reverse("web:signing_contracts") + "?export=xlsx").content))
    name = book.active.cell(row=2, column=5)
    assert name.data_type == "s" and name.value == f"{formula} @SUM(1+1)"
