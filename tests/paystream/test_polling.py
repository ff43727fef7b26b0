"""The screens' polls (htmx, every 2 s) only read the database: a page left open makes no call to
the payment stream. What changes at the stream comes in through the consumer (a follow-up task a
few seconds after each request, then the per-minute sweep) or a person's explicit "Ask ... now"
(a POST, with the stream's right, audited, at most once per ASK_MIN_SECONDS per client or loan)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.core.models import AuditEntry
from imali.paystream import services
from imali.paystream.models import DebiCheckMandate, MandateState, WalletRequest, WalletStatus
from imali.paystream.tasks import paystream_mandate_follow, paystream_wallet_follow
from imali.tenancy.rights import Right
from tests import factories

from .conftest import submitted_mandate_awaiting_the_bank

ASKED = "paystream.status_asked"


@pytest.fixture
def huey_in_memory(settings):
    """Follow-ups scheduled by a task stay in Huey's memory (immediate mode), not in var/'s queue."""
    settings.HUEY.immediate = True
    yield settings.HUEY
    settings.HUEY.immediate = False


@pytest.fixture
def web(client, clerk):
    client.force_login(clerk)
    return client


def _wallet(entity, clerk, borrower, peer, *, delay: float) -> WalletRequest:
    peer.configure(wallet_delay=delay)
    return services.wallet_create(entity=entity, actor=clerk, client=borrower)


def test_the_wallet_poll_calls_nobody_and_the_consumer_brings_the_wallet_in(web, ps_entity, clerk, borrower, peer):
    wallet = _wallet(ps_entity, clerk, borrower, peer, delay=0)
    poll = reverse("web:paystream_wallets", kwargs={"client_id": borrower.pk})
    calls = len(peer.received)
    for _ in range(5):  # a page left open
        fragment = web.get(poll, HTTP_HX_REQUEST="true")
        assert fragment.status_code == 200 and 'data-status="requested"' in fragment.content.decode()
    assert len(peer.received) == calls
    paystream_wallet_follow.call_local(wallet.pk)  # the consumer's follow-up
    assert peer.received[calls:] == ["WalletStatus"]
    fragment = web.get(poll, HTTP_HX_REQUEST="true")
    assert 'data-status="created"' in fragment.content.decode() and fragment["HX-Refresh"] == "true"
    assert len(peer.received) == calls + 1


def test_ask_the_stream_now_is_a_post_with_the_right_audited_and_rate_limited(web, client, ps_entity, clerk, borrower, peer):
    _wallet(ps_entity, clerk, borrower, peer, delay=3600)  # still being made at the stream throughout
    ask = reverse("web:paystream_wallets_ask", kwargs={"client_id": borrower.pk})
    page = web.get(reverse("web:paystream_client", kwargs={"client_id": borrower.pk})).content.decode()
    assert f'action="{ask}"' in page
    assert web.get(ask).status_code == 405
    calls = len(peer.received)
    viewer = factories.make_user(entity=ps_entity, rights=[Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS])
    client.force_login(viewer)
    assert client.post(ask).status_code == 403 and len(peer.received) == calls
    client.force_login(clerk)
    # Asked, audited, nothing changed yet.
    assert client.post(ask).status_code == 302
    assert WalletRequest.objects.get(client=borrower).status == WalletStatus.REQUESTED
    assert peer.received[calls:] == ["WalletStatus"]
    entry = AuditEntry.objects.get(action=ASKED)
    assert (entry.actor_id, entry.object_id, entry.after["function"]) == (clerk.pk, str(borrower.pk), "WalletStatus")
    # Pressed again at once (or by a colleague): refused, no call.
    again = client.post(ask)
    assert again.status_code == 400 and "asked less than" in again.content.decode()
    assert len(peer.received) == calls + 1 and AuditEntry.objects.filter(action=ASKED).count() == 1
    with pytest.raises(ValidationError) as refused:
        services.wallets_ask(entity=ps_entity, actor=clerk, client=borrower)
    assert refused.value.message_dict.keys() == {"__all__"}


def test_the_mandate_poll_calls_nobody_and_the_follow_up_or_a_person_brings_the_answer(web, ps_entity, clerk, borrower, peer,
                                                                                       huey_in_memory):
    loan, mandate = submitted_mandate_awaiting_the_bank(ps_entity, clerk, borrower, peer)
    panel = reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk})
    ask = reverse("web:paystream_mandates_ask", kwargs={"loan_id": loan.pk})
    calls = len(peer.received)
    for _ in range(5):
        waiting = web.get(panel, HTTP_HX_REQUEST="true").content.decode()
        assert f'hx-get="{panel}"' in waiting and f'action="{ask}"' in waiting
    assert len(peer.received) == calls
    # The consumer's follow-up asks once; the bank has no answer yet.
    paystream_mandate_follow.call_local(mandate.pk)
    assert peer.received[calls:] == ["MandateStatus"]
    assert len(huey_in_memory.scheduled()) == 1  # and asks again in a few seconds
    # The client approves; a person asks now: one call, audited, and the panel shows it.
    peer.mandate_answer(mandate.contract_reference, "approve")
    assert web.post(ask).status_code == 302
    assert peer.received[calls:] == ["MandateStatus", "MandateStatus"]
    assert AuditEntry.objects.filter(action=ASKED, object_id=str(loan.pk)).count() == 1
    answered = web.get(panel, HTTP_HX_REQUEST="true").content.decode()
    assert "Approved by the client&#x27;s bank" in answered and "hx-get" not in answered
    assert DebiCheckMandate.objects.get(pk=mandate.pk).status == MandateState.APPROVED
    # Nothing waits any more: asking again calls nobody.
    assert web.post(ask).status_code == 302 and len(peer.received) == calls + 2
