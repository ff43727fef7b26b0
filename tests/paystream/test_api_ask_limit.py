"""The API's wallet-refresh and mandate refresh ask the stream like the screens' "Ask ... now"
buttons, under the same limit (once per ASK_MIN_SECONDS per client or loan, screen and API
together) and the same audit entry; a second ask too soon is a 429 with Retry-After and a body
that says why, and calls nobody."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imali.core.models import AuditEntry
from imali.paystream import services
from imali.paystream.models import MandateState, WalletRequest, WalletStatus

from .conftest import submitted_mandate_awaiting_the_bank

ASKED = "paystream.status_asked"


@pytest.fixture
def api(client, clerk):
    client.force_login(clerk)
    return client


def _too_soon(response):
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "asked_recently" and "asked less than" in body["detail"]
    assert 1 <= int(response["Retry-After"]) <= services.ASK_MIN_SECONDS and body["retry_after"] == int(response["Retry-After"])


def test_wallet_refresh_is_limited_and_audited_like_the_screen(api, ps_entity, clerk, borrower, peer):
    peer.configure(wallet_delay=3600)  # still being made at the stream throughout
    services.wallet_create(entity=ps_entity, actor=clerk, client=borrower)
    url = f"/api/payment-stream/clients/{borrower.pk}/wallet-refresh/"
    calls = len(peer.received)
    first = api.post(url)
    assert first.status_code == 200 and [w["status"] for w in first.json()] == ["requested"]
    assert peer.received[calls:] == ["WalletStatus"]
    entry = AuditEntry.objects.get(action=ASKED)
    assert (entry.actor_id, entry.object_id, entry.after["function"]) == (clerk.pk, str(borrower.pk), "WalletStatus")
    _too_soon(api.post(url))
    # The screen's button shares the limit, both ways.
    assert api.post(reverse("web:paystream_wallets_ask", kwargs={"client_id": borrower.pk})).status_code == 400
    assert len(peer.received) == calls + 1 and AuditEntry.objects.filter(action=ASKED).count() == 1
    assert WalletRequest.objects.get(client=borrower).status == WalletStatus.REQUESTED


def test_wallet_refresh_with_nothing_waiting_asks_nobody_and_is_not_limited(api, ps_entity, clerk, borrower, peer):
    url = f"/api/payment-stream/clients/{borrower.pk}/wallet-refresh/"
    calls = len(peer.received)
    for _ in range(3):
        response = api.post(url)
        assert response.status_code == 200 and response.json() == []
    assert len(peer.received) == calls and not AuditEntry.objects.filter(action=ASKED).exists()


def test_mandate_refresh_is_limited_per_loan_and_audited_like_the_screen(api, ps_entity, clerk, borrower, peer):
    loan, mandate = submitted_mandate_awaiting_the_bank(ps_entity, clerk, borrower, peer)
    url = f"/api/payment-stream/mandates/{mandate.pk}/refresh/"
    calls = len(peer.received)
    first = api.post(url)
    assert first.status_code == 200 and first.json()["status"] == MandateState.AUTHENTICATING
    assert peer.received[calls:] == ["MandateStatus"]
    entry = AuditEntry.objects.get(action=ASKED)
    assert (entry.actor_id, entry.object_id, entry.after["function"]) == (clerk.pk, str(loan.pk), "MandateStatus")
    peer.mandate_answer(mandate.contract_reference, "approve")
    _too_soon(api.post(url))
    assert api.post(reverse("web:paystream_mandates_ask", kwargs={"loan_id": loan.pk})).status_code == 400
    assert len(peer.received) == calls + 1 and AuditEntry.objects.filter(action=ASKED).count() == 1
