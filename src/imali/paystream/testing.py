"""Objects of every payment-stream kind for the entity-isolation test, built through the real
services against a local peer on an ephemeral loopback port (started once per test process)."""

from __future__ import annotations

import datetime as dt
import threading

_peer = None
_lock = threading.Lock()


def local_peer():
    """One peer for the whole test process: a daemon thread on loopback, ended with the process."""
    global _peer
    with _lock:
        if _peer is None:
            from imali.peers.paystream import PaystreamPeer, PeerConfig

            _peer = PaystreamPeer(PeerConfig(username="isolation", password="isolation-secret")).start()
        return _peer


def isolation_objects(*, entity, actor, client) -> dict:
    from imali.loans import services as loans
    from imali.tenancy.models import Module

    from . import services

    peer = local_peer()
    entity.modules = [*entity.modules, Module.PAYMENT_STREAMS.value]
    entity.save(update_fields=["modules"])
    services.stream_settings_save(entity=entity, actor=actor, base_url=peer.base_url, username="isolation",
                                  password="isolation-secret")
    account = services.account_register(entity=entity, actor=actor, client=client, branch_code="632005",
                                        account_number="4012345679", account_type="cheque")
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Stream isolation product", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="1000", instalments=2,
                            applied_on=dt.date.today(), pay_day=25)
    loans.loan_approve(loan=loan, actor=actor)
    note = services.note_create(entity=entity, actor=actor, loan=loan, stream="eft", account=account)
    payment = services.credit_pay(entity=entity, actor=actor, client=client, parts=[(account, "10.00")])
    mandate, amendment = _debicheck(entity=entity, actor=actor, loan=loan, account=account)
    return {"stream_account": account, "promissory_note": note, "credit_payment": payment, "debicheck_mandate": mandate,
            "mandate_amendment": amendment}


def _sign(*, entity, actor, loan, document) -> None:
    """The client signs: by OTP where the entity's setup requires it (read off the outbox as the
    phone would), else by hand."""
    from imali.signing import services as signing
    from imali.signing.testing import code_from_outbox

    doc = signing.Document(loan=loan, mandate=document)
    if signing.document_decision(entity=entity, document=doc).requirement == "otp_required":
        challenge = signing.document_otp_send(actor=actor, entity=entity, document=doc)
        signing.document_otp_verify(actor=actor, entity=entity, document=doc, challenge_id=challenge.public_id,
                                    code=code_from_outbox(challenge))
    else:
        signing.document_hand_sign(actor=actor, entity=entity, document=doc)


def _debicheck(*, entity, actor, loan, account):
    """An approved DebiCheck mandate (TT3: card and PIN, taken at any hour; the peer approves) and
    an amendment of it waiting for the client's signature."""
    from . import mandates

    mandate = mandates.mandate_create(entity=entity, actor=actor, loan=loan, account=account, data={
        "authentication": "tt3", "instalment_amount": str(loan.instalment_amount),
        "maximum_collection": str(loan.instalment_amount), "collection_day": 25,
        "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()})
    _sign(entity=entity, actor=actor, loan=loan, document=mandate.document)
    mandate = mandates.mandate_submit(entity=entity, actor=actor, mandate=mandate)
    amendment = mandates.mandate_amend(entity=entity, actor=actor, mandate=mandate, data={"collection_day": 20})
    return mandate, amendment
