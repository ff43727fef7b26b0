"""The demo's mobile money: the ZA demo lender's M-PESA paybill set up against the local Daraja
peer (`make demo` runs it on 8051), so a person can pay a loan from the peer's "simulate a
customer payment" page and see the receipt on the loan and the SMS on the phone page. Idempotent."""

from __future__ import annotations

from imali.peers.mpesa.server import MpesaConfig

DEMO_ENTITY_CODE = "demo-za1"
DEMO_MPESA_PORT = 8051
DEMO_WEB = "http://127.0.0.1:8000/"


def demo_mobile_money_ensure() -> bool:
    """Create the demo lender's M-PESA setup if missing. Returns whether anything was created."""
    from imali.mobilemoney.models import Provider, ProviderSetup
    from imali.mobilemoney.services import setup_save
    from imali.tenancy.models import Entity

    entity = Entity.objects.filter(code=DEMO_ENTITY_CODE).first()
    if entity is None:
        return False
    created = demo_payout_wallets_ensure(entity)
    if ProviderSetup.objects.filter(entity=entity, provider=Provider.MPESA).exists():
        return created
    peer = MpesaConfig()
    setup_save(entity=entity, actor=None, data={
        "provider": Provider.MPESA, "base_url": f"http://127.0.0.1:{DEMO_MPESA_PORT}", "short_code": peer.short_code,
        "consumer_key": peer.consumer_key, "consumer_secret": peer.consumer_secret, "initiator_name": peer.initiator_name,
        "security_credential": peer.security_credential, "callback_base_url": DEMO_WEB})
    return True


def demo_payout_wallets_ensure(entity) -> bool:
    """Each client of the demo lender's approved loans gets an M-PESA payout wallet on their
    cellphone, through the client services (audited), unless they have a wallet already: a person
    trying "Mobile disbursements" can pay a loan out through the peer at once."""
    from imali.clients.models import AccountKind, AccountPurpose, Client
    from imali.clients.services import client_account_add
    from imali.loans.models import LoanStatus

    clients = (Client.objects.filter(entity=entity, loans__status=LoanStatus.APPROVED).exclude(cellphone="")
               .exclude(accounts__kind=AccountKind.WALLET).distinct().order_by("id"))
    created = False
    for client in clients:
        client_account_add(client=client, actor=None, data={
            "kind": AccountKind.WALLET, "purpose": AccountPurpose.PAYOUT, "wallet_provider": "M-PESA",
            "wallet_number": client.cellphone})
        created = True
    return created


def demo_peer_environment(*, web: str) -> dict[str, str]:
    """The local M-PESA peer's settings for the demo setup: its credentials, and the validation and
    confirmation URLs registered already (what a real paybill keeps between restarts), pointing at
    the web app wherever run_stack put it. Environment, not argv: `ps` shows the command line."""
    from imali.mobilemoney.models import Provider, ProviderSetup
    from imali.mobilemoney.services import callback_url

    setup = (ProviderSetup.objects.select_related("entity")
             .filter(provider=Provider.MPESA, entity__code=DEMO_ENTITY_CODE, base_url__endswith=f":{DEMO_MPESA_PORT}").first())
    if setup is None:
        return {}
    setup.callback_base_url = web
    return {
        "IMALI_MPESA_SHORT_CODE": setup.short_code, "IMALI_MPESA_CONSUMER_KEY": setup.consumer_key,
        "IMALI_MPESA_CONSUMER_SECRET": setup.consumer_secret, "IMALI_MPESA_INITIATOR": setup.initiator_name,
        "IMALI_MPESA_SECURITY_CREDENTIAL": setup.security_credential, "IMALI_MPESA_TIME_ZONE": setup.entity.time_zone,
        "IMALI_MPESA_VALIDATION_URL": callback_url(setup, "validation"),
        "IMALI_MPESA_CONFIRMATION_URL": callback_url(setup, "confirmation"),
    }
