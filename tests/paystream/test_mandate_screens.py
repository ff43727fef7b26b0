"""DebiCheck mandates through the loan's screens (Django's test client, htmx polling of the status)
and the API, against the peer over loopback."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from imali.paystream import services
from imali.paystream.models import DebiCheckMandate, MandateState
from imali.signing import services as signing
from imali.tenancy.rights import Right
from tests import factories

from .conftest import ABSA_OK, approved_loan, stream_entity


@pytest.fixture
def web(client, clerk):
    client.force_login(clerk)
    return client


@pytest.fixture
def loan_account(ps_entity, clerk, borrower, peer):
    peer.configure(now=dt.datetime.combine(dt.date.today(), dt.time(10, 0), tzinfo=dt.timezone(dt.timedelta(hours=2))),
                   mandate_answer="none")
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    return approved_loan(ps_entity, clerk, borrower), account


def _form(loan, account, **changes):
    return {"account": account.pk, "authentication": "tt1", "value_type": "fixed", "debit_sequence": "recurring",
            "instalment_amount": str(loan.instalment_amount), "maximum_collection": str(loan.instalment_amount + 100),
            "frequency": "monthly", "collection_day": "25", "adjustment_category": "never", "tracking_days": "2",
            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat(), **changes}


def test_create_sign_send_and_the_status_updates_itself(web, ps_entity, clerk, loan_account, peer):
    loan, account = loan_account
    page_url = reverse("web:paystream_mandates", kwargs={"loan_id": loan.pk})
    create_url = reverse("web:paystream_mandate_create", kwargs={"loan_id": loan.pk})
    bad = web.post(create_url, _form(loan, account, maximum_collection=str(loan.instalment_amount * 2)))
    assert bad.status_code == 400 and "at most 1.5 times it" in bad.content.decode()
    assert not DebiCheckMandate.objects.exists()
    created = web.post(create_url, _form(loan, account), follow=True)
    mandate = DebiCheckMandate.objects.get(loan=loan)
    assert created.status_code == 200 and f"DebiCheck mandate {mandate.contract_reference} created" in created.content.decode()
    assert reverse("web:signing_mandate", kwargs={"mandate_id": mandate.document_id}) in created.content.decode()
    signing.document_hand_sign(actor=clerk, entity=ps_entity, document=signing.Document(loan=loan, mandate=mandate.document))
    sent = web.post(reverse("web:paystream_mandate_send", kwargs={"debicheckmandate_id": mandate.pk}), follow=True)
    assert "sent to the bank" in sent.content.decode()
    panel_url = reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk})
    # While the bank waits for the client the panel asks to be polled again; once answered it stops.
    waiting = web.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert f'hx-get="{panel_url}"' in waiting and "Waiting for the client to authenticate at the bank" in waiting
    peer.mandate_answer(mandate.contract_reference, "approve")
    # The poll only reads (tests/paystream/test_polling.py); the consumer's follow-up asks the bank.
    from imali.paystream.tasks import paystream_mandate_follow

    paystream_mandate_follow.call_local(mandate.pk)
    answered = web.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Approved by the client&#x27;s bank" in answered and "hx-get" not in answered
    # The loan's stream page loads the panel.
    assert panel_url in web.get(reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})).content.decode()
    # Amend: frequency stays; a bad maximum is refused on the form.
    amend = web.post(reverse("web:paystream_mandate_amend", kwargs={"debicheckmandate_id": mandate.pk}),
                     {"instalment_amount": "1000.00", "maximum_collection": "1600.00", "collection_day": "20"})
    assert amend.status_code == 400 and "at most 1.5 times it" in amend.content.decode()
    cancel = web.post(reverse("web:paystream_mandate_cancel", kwargs={"debicheckmandate_id": mandate.pk}), {"reason": "client asked"},
                      follow=True)
    assert "cancelled" in cancel.content.decode()
    assert DebiCheckMandate.objects.get(pk=mandate.pk).status == MandateState.CANCELLED
    assert web.get(page_url).status_code == 200


def test_screens_need_the_right_and_the_entity(client, ps_entity, clerk, loan_account, peer):
    loan, account = loan_account
    nobody = factories.make_user(entity=ps_entity, rights=[Right.CAPTURE_LOANS])
    client.force_login(nobody)
    assert client.get(reverse("web:paystream_mandates", kwargs={"loan_id": loan.pk})).status_code == 403
    # Another South African lender with a stream (the shared other_entity is Namibian: it has none).
    other = stream_entity(factories.make_entity(), peer)
    stranger = factories.make_user(entity=other, rights=[Right.PAYMENT_STREAM_WEB_SERVICES])
    client.force_login(stranger)
    assert client.get(reverse("web:paystream_mandates", kwargs={"loan_id": loan.pk})).status_code == 404
    assert client.post(reverse("web:paystream_mandate_create", kwargs={"loan_id": loan.pk}), _form(loan, account)).status_code == 404


def test_the_api(client, ps_entity, clerk, loan_account, peer):
    loan, account = loan_account
    client.force_login(clerk)
    body = {"loan": loan.pk, "account": account.pk, "authentication": "tt3", "contract_reference": "API-1",
            "instalment_amount": str(loan.instalment_amount), "maximum_collection": str(loan.instalment_amount),
            "collection_day": 31, "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()}
    bad = client.post("/api/payment-stream/mandates/", body, content_type="application/json")
    assert bad.status_code == 400 and "collection_day" in bad.json()
    created = client.post("/api/payment-stream/mandates/", {**body, "collection_day": 99}, content_type="application/json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["status"], data["contract_reference"], data["collection_day"]) == ("awaiting_signature", "API-1", 99)
    unsigned = client.post(f"/api/payment-stream/mandates/{data['id']}/send/")
    assert unsigned.status_code == 400 and "signed" in unsigned.json()["mandate"][0]
    hand = client.post(f"/api/signing/mandates/{data['signing_document']}/signing/hand/")
    assert hand.status_code == 201, hand.content
    peer.mandate_answer("API-1", "approve")  # card and PIN at the terminal
    sent = client.post(f"/api/payment-stream/mandates/{data['id']}/send/")
    assert sent.status_code == 200 and sent.json()["status"] == "approved"
    refused = client.post(f"/api/payment-stream/mandates/{data['id']}/amend/", {"frequency": "weekly"},
                          content_type="application/json")
    assert refused.status_code == 400 and "cannot be amended" in refused.json()["frequency"][0]
    amended = client.post(f"/api/payment-stream/mandates/{data['id']}/amend/", {"collection_day": 20},
                          content_type="application/json")
    assert amended.status_code == 201 and amended.json()["status"] == "awaiting_signature"
    assert amended.json()["collection_day"] == 20 and amended.json()["signing_document"] is not None
    again = client.post("/api/payment-stream/mandates/", body | {"collection_day": 1}, content_type="application/json")
    assert again.status_code == 400 and "never reused" in again.json()["contract_reference"][0]
    listed = client.get(f"/api/payment-stream/mandates/?loan={loan.pk}").json()["results"]
    assert [m["contract_reference"] for m in listed] == ["API-1"]


def test_the_list_and_the_panel_read_a_fixed_number_of_queries(client, ps_entity, clerk, loan_account):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from imali.paystream import mandates

    loan, account = loan_account
    client.force_login(clerk)
    panel = reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk})

    def counts() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as api_queries:
            assert client.get(f"/api/payment-stream/mandates/?loan={loan.pk}").status_code == 200
        with CaptureQueriesContext(connection) as panel_queries:
            assert client.get(panel).status_code == 200
        return len(api_queries), len(panel_queries)

    data = {"authentication": "tt2", "collection_day": 25, "first_collection_date": dt.date.today().isoformat()}
    mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=data)
    one = counts()
    for _ in range(2):
        mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=data)
    assert counts() == one  # no query per mandate


def test_signing_screens_and_the_debicheck_mandate_link_both_ways(web, client, ps_entity, clerk, loan_account, peer):
    """The signing module's pages of a DebiCheck mandate show the mandate at the bank (status, which
    terms this document holds) and link to it; the mandate list links the signed document."""
    from imali.paystream import mandates

    loan, account = loan_account
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                      data={"authentication": "tt1", "collection_day": 25, "contract_reference": "LINK-1",
                                            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()})
    debicheck_page = reverse("web:paystream_mandates", kwargs={"loan_id": loan.pk})
    signing_url = reverse("web:signing_mandate", kwargs={"mandate_id": mandate.document_id})
    page = web.get(signing_url).content.decode()
    assert 'id="debicheck-status" data-status="awaiting_signature"' in page
    assert f'href="{debicheck_page}#mandate-{mandate.pk}"' in page and "The mandate's terms" in page
    # The loan's own signing page lists the document with its DebiCheck status.
    loan_page = web.get(reverse("web:signing_loan", kwargs={"loan_id": loan.pk})).content.decode()
    assert "DebiCheck: Awaiting the client&#x27;s signature" in loan_page
    # Signed by hand on the signing page: the DebiCheck mandate is signed, the signing page says so.
    signed = web.post(signing_url, {"action": "hand"}, follow=True)
    signature = mandate.document.signature
    assert signed.status_code == 200 and 'id="debicheck-status" data-status="signed"' in signed.content.decode()
    assert DebiCheckMandate.objects.get(pk=mandate.pk).status == MandateState.SIGNED
    assert 'data-status="signed"' in web.get(signing_url).content.decode()
    # The mandate list links the signed document and its PDF instead of the signing page.
    panel = web.get(reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk})).content.decode()
    assert reverse("web:signing_signature", kwargs={"signature_id": signature.pk}) in panel
    assert reverse("web:signing_signature_pdf", kwargs={"signature_id": signature.pk}) in panel
    assert 'class="sign-document"' not in panel
    pdf = web.get(reverse("web:signing_signature_pdf", kwargs={"signature_id": signature.pk}))
    assert pdf.status_code == 200 and bytes(pdf.content).startswith(b"%PDF")
    # The amended terms are a new document, signed again; the first becomes the earlier terms once
    # the bank approves the amendment.
    peer.configure(mandate_answer="approve")
    mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    mandate = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate)
    assert mandate.status == MandateState.APPROVED
    amendment = mandates.mandate_amend(entity=ps_entity, actor=clerk, mandate=mandate, data={"collection_day": 20})
    amendment_url = reverse("web:signing_mandate", kwargs={"mandate_id": amendment.document_id})
    page = web.get(amendment_url).content.decode()
    assert "Amendment 1: Awaiting the client&#x27;s signature" in page and 'data-status="approved"' in page
    panel = web.get(reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk})).content.decode()
    assert amendment_url in panel and "Sign the new terms" in panel
    web.post(amendment_url, {"action": "hand"})
    mandates.amendment_submit(entity=ps_entity, actor=clerk, amendment=amendment)
    assert DebiCheckMandate.objects.get(pk=mandate.pk).document_id == amendment.document_id
    assert "earlier terms, replaced by an approved amendment" in web.get(signing_url).content.decode()
    assert "Amendment 1: Approved by the client&#x27;s bank" in web.get(amendment_url).content.decode()
    # The signed agreement's page names the mandate too.
    signature_page = web.get(reverse("web:signing_signature", kwargs={"signature_id": signature.pk})).content.decode()
    assert "mandate LINK-1" in signature_page and f"{debicheck_page}#mandate-{mandate.pk}" in signature_page
    # Someone who may sign but not use the payment stream sees the status, not the link.
    signer = factories.make_user(entity=ps_entity, rights=[Right.CAPTURE_LOANS])
    client.force_login(signer)
    page = client.get(signing_url).content.decode()
    assert 'id="debicheck-status"' in page and 'id="debicheck-link"' not in page


def test_a_signing_only_mandate_is_not_taken_for_a_debicheck_one(web, ps_entity, clerk, loan_account):
    from imali.signing import services as signing_services

    loan, account = loan_account
    document = signing_services.mandate_create(actor=clerk, entity=ps_entity, loan=loan, data={
        "kind": "debicheck", "contract_reference": "PAPER-1", "instalment_amount": loan.instalment_amount,
        "maximum_collection": loan.instalment_amount, "collection_day": 25, "account": account.account})
    page = web.get(reverse("web:signing_mandate", kwargs={"mandate_id": document.pk})).content.decode()
    assert 'id="debicheck"' not in page


def test_the_mandate_signing_page_shows_the_maximum_collection_as_money(web, ps_entity, clerk, loan_account):
    # "1,310.54 (maximum 1441.59)": the instalment had separators, the maximum the bare Decimal.
    from imali.paystream import mandates

    loan, account = loan_account
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                      data={"authentication": "tt3", "collection_day": 25,
                                            "maximum_collection": str(loan.instalment_amount + 100),
                                            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()})
    assert mandate.maximum_collection >= 1000
    page = web.get(reverse("web:signing_mandate", kwargs={"mandate_id": mandate.document_id})).content.decode()
    assert f"(maximum {mandate.maximum_collection:,.2f})" in page


def test_after_the_tt1_cut_off_the_form_offers_tt2_and_a_tt1_post_names_the_field(web, ps_entity, clerk, loan_account,
                                                                                   monkeypatch):
    from imali.paystream import mandates

    loan, account = loan_account
    monkeypatch.setattr(mandates, "bank_now", lambda: dt.datetime.combine(
        dt.date.today(), dt.time(20, 40), tzinfo=dt.timezone(dt.timedelta(hours=2))))
    page = web.get(reverse("web:paystream_mandates", kwargs={"loan_id": loan.pk}))
    assert page.context["form"]["authentication"].value() == "tt2"
    refused = web.post(reverse("web:paystream_mandate_create", kwargs={"loan_id": loan.pk}), _form(loan, account))
    assert refused.status_code == 400
    assert "after 20:30 South African time" in refused.content.decode()
    assert not DebiCheckMandate.objects.filter(loan=loan).exists()
