"""The payment-stream screens through Django's test client, against the peer over loopback."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imali.paystream import services
from imali.paystream.models import NoteStatus, PromissoryNote, StreamRequest
from imali.tenancy.rights import Right
from tests import factories

from .conftest import ABSA_OK, approved_loan, stream_entity


@pytest.fixture
def web(client, clerk):
    client.force_login(clerk)
    return client


def test_client_page_add_account_with_cdv_error_then_success(web, borrower, peer):
    url = reverse("web:paystream_account_add", kwargs={"client_id": borrower.pk})
    bad = web.post(url, {"branch_code": "632005", "account_number": "4012345678", "account_type": "cheque"})
    assert bad.status_code == 400
    assert "The account number fails the check digit for branch 632005." in bad.content.decode()
    good = web.post(url, {**ABSA_OK}, follow=True)
    assert good.status_code == 200
    page = good.content.decode()
    assert "passed the check-digit test" in page and "ABSA" in page and "Registered at the stream" in page


def test_loan_page_note_print_cancel(web, ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    response = web.post(reverse("web:paystream_note_create", kwargs={"loan_id": loan.pk}),
                        {"stream": "eft", "account": account.pk, "tracking_days": "0"}, follow=True)
    assert response.status_code == 200 and "Promissory note N" in response.content.decode()
    note = PromissoryNote.objects.get(loan=loan)
    pdf = web.post(reverse("web:paystream_note_print", kwargs={"promissorynote_id": note.pk}))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    edit = web.post(reverse("web:paystream_instalment_edit", kwargs={"promissorynote_id": note.pk}), {"seq": "1", "amount": "99.99"}, follow=True)
    assert "Instalment 1 of note" in edit.content.decode()
    web.post(reverse("web:paystream_note_cancel", kwargs={"promissorynote_id": note.pk}))
    note.refresh_from_db()
    assert note.status == NoteStatus.CANCELLED
    page = web.get(reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})).content.decode()
    assert "Cancellation document (PDF)" in page


def test_payout_from_the_loan_page_must_add_up_to_the_principal(web, ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower, principal="3000")
    url = reverse("web:paystream_loan_pay", kwargs={"loan_id": loan.pk})
    short = web.post(url, {"account_1": account.pk, "amount_1": "2000.00", "cash_amount": "500.00"})
    assert short.status_code == 400 and "3,000.00" in short.content.decode()
    done = web.post(url, {"account_1": account.pk, "amount_1": "2500.00", "cash_amount": "500.00"}, follow=True)
    assert "accepted by the stream" in done.content.decode()


def test_wallet_appears_through_the_polled_fragment(web, ps_entity, borrower, peer):
    peer.configure(wallet_delay=0)
    web.post(reverse("web:paystream_wallet_create", kwargs={"client_id": borrower.pk}))
    # The poll only reads; "Ask the stream now" (or the consumer) brings the wallet in.
    web.post(reverse("web:paystream_wallets_ask", kwargs={"client_id": borrower.pk}))
    fragment = web.get(reverse("web:paystream_wallets", kwargs={"client_id": borrower.pk}), HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and fragment["HX-Refresh"] == "true"
    assert 'data-status="created"' in fragment.content.decode()
    page = web.get(reverse("web:paystream_client", kwargs={"client_id": borrower.pk})).content.decode()
    assert "Payment stream W" in page  # the wallet joined the registered accounts


def test_settings_never_show_the_password(web, ps_entity):
    page = web.get(reverse("web:paystream_settings")).content.decode()
    assert "s3cret-stream" not in page and "one is stored" in page
    response = web.post(reverse("web:paystream_settings"), {"base_url": "http://127.0.0.1:9", "username": "lender",
                                                             "password": "", "branch_code": "HO", "timeout_seconds": "5"})
    assert response.status_code == 302
    from imali.core.models import AuditEntry
    from imali.paystream.models import StreamSettings

    assert StreamSettings.objects.get(entity=ps_entity).password == "s3cret-stream"  # blank kept it
    assert all("s3cret" not in str(e.after) for e in AuditEntry.objects.filter(action="paystream.settings_changed"))


def test_rights_and_isolation(client, ps_entity, borrower, peer):
    viewer = factories.make_user(entity=ps_entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(viewer)
    assert client.get(reverse("web:paystream_client", kwargs={"client_id": borrower.pk})).status_code == 403
    other = stream_entity(factories.make_entity(), peer)
    outsider = factories.make_user(entity=other, rights=[Right.PAYMENT_STREAM_WEB_SERVICES])
    client.force_login(outsider)
    assert client.get(reverse("web:paystream_client", kwargs={"client_id": borrower.pk})).status_code == 404
    assert client.post(reverse("web:paystream_account_add", kwargs={"client_id": borrower.pk}), ABSA_OK).status_code == 404
    assert not StreamRequest.objects.filter(entity=ps_entity).exists()


def test_pages_have_bounded_queries(web, ps_entity, clerk, borrower, peer, django_assert_max_num_queries):
    first = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    second = services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="250655",
                                       account_number="62000000008", account_type="savings")
    for n in range(5):
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, parts=[(first, f"{n + 1}.00"), (second, "1.00")])
    with django_assert_max_num_queries(20):
        assert web.get(reverse("web:paystream_client", kwargs={"client_id": borrower.pk})).status_code == 200
    with django_assert_max_num_queries(12):
        assert web.get(reverse("web:paystream_requests")).status_code == 200
    loan = approved_loan(ps_entity, clerk, borrower)
    services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="naedo", account=first)
    with django_assert_max_num_queries(20):
        assert web.get(reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})).status_code == 200
