"""Builds signing records for another entity, for the entity-isolation test (tests/isolation_book.py)."""

from __future__ import annotations

from imali.loans.models import Loan, Product
from imali.messaging.credits import credits_assign
from imali.messaging.models import OutboxMessage
from imali.tenancy.models import User

from . import security, services


def code_from_outbox(challenge) -> str:
    """The code as the phone receives it: the outbox text unsealed as the transport does."""
    message = OutboxMessage.objects.get(pk=challenge.outbox_message_id)
    offset = int(message.idempotency_key.split(":")[3])
    length = len(message.text[offset:]) - len(message.text[offset:].lstrip(security.MASK_CHAR))
    return security.unseal_for_submit(message.text, message.idempotency_key)[offset:offset + length]


def isolation_objects(*, entity, actor, client) -> dict:
    from imali.loans.services import loan_apply, product_create

    operator = User.objects.filter(is_operator=True).first()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=50)
    services.otp_setup_update(actor=actor, entity=entity, data={"enrol_client": True, "loan_otp": True})
    challenge = services.enrolment_send(actor=actor, entity=entity, client=client)
    services.enrolment_verify(actor=actor, entity=entity, client=client, challenge_id=challenge.public_id,
                              code=code_from_outbox(challenge))
    loan = Loan.objects.filter(entity=entity, client=client, status__in=("application", "approved"),
                               disbursed_on__isnull=True).first()
    if loan is None:
        product = Product.objects.filter(entity=entity).first() or product_create(entity=entity, actor=actor, data={
            "name": "Signing isolation", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
            "max_principal": "8000", "min_instalments": 1, "max_instalments": 6, "interest_rate_pm": "5",
            "service_fee_pm": "60", "vat_rate": "15"})
        loan = loan_apply(entity=entity, actor=actor, client=client, product=product, principal="3000", instalments=3,
                          pay_day=25)
    document = services.Document(loan=loan)
    challenge = services.document_otp_send(actor=actor, entity=entity, document=document)
    signature = services.document_otp_verify(actor=actor, entity=entity, document=document,
                                             challenge_id=challenge.public_id, code=code_from_outbox(challenge))
    mandate = services.mandate_create(actor=actor, entity=entity, loan=loan, data={
        "kind": "debicheck", "collection_day": 25, "account": client.accounts.first()})
    pending = services.document_otp_send(actor=actor, entity=entity, document=services.Document(loan=loan, mandate=mandate))
    return {"signature": signature, "mandate": mandate, "signing_challenge": pending}
