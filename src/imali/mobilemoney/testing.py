"""Objects of every mobile-money kind for the entity-isolation test, built through the services
where they need no provider (a setup, a payment in suspense, a pending disbursement and its
batch awaiting approval, a previewed statement)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def isolation_objects(*, entity, actor, client) -> dict:
    from django.utils import timezone

    from imali.clients.services import client_account_add
    from imali.loans import services as loans
    from imali.mobilemoney import disbursements, services

    setup = services.setup_save(entity=entity, actor=actor, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": f"9{entity.pk:05d}", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:8000/"})
    txn, _ = services.payment_in_record(setup=setup, source="callback", payment=services.PaymentIn(
        provider_transaction_id=f"ISO{entity.pk:07d}", amount=Decimal("10.00"), transacted_at=timezone.now(),
        account_reference="nobody"))
    client_account_add(client=client, actor=actor, data={"kind": "wallet", "purpose": "payout", "wallet_provider": "M-PESA",
                                                          "wallet_number": client.cellphone})
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Isolation mobile product", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="700", instalments=3,
                            applied_on=dt.date(2026, 1, 5))
    loans.loan_approve(loan=loan, actor=actor)
    if loans.disbursement_signing_block(entity=entity, loan=loan):
        # The signing builder enrolled the client's cellphone: the agreement is signed by OTP first.
        from imali.signing import services as signing
        from imali.signing.testing import code_from_outbox

        document = signing.Document(loan=loan)
        challenge = signing.document_otp_send(actor=actor, entity=entity, document=document)
        signing.document_otp_verify(actor=actor, entity=entity, document=document, challenge_id=challenge.public_id,
                                    code=code_from_outbox(challenge))
    disbursement = disbursements.disbursement_mark(loan=loan, actor=actor)
    limit = actor.disbursement_limit
    actor.disbursement_limit = Decimal("0")
    batch = disbursements.payments_send(entity=entity, actor=actor)  # over the limit: waits, nothing is sent
    actor.disbursement_limit = limit
    disbursement.refresh_from_db()
    statement = services.statement_upload(
        setup=setup, actor=actor, file_name="iso.csv", columns={},
        content=b"Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info,A/C No.\n"
                b"ISOSTMT001,2026-01-05 10:00:00,Completed,10.00,27820000000 - A B,nobody\n").statement
    from imali.loans.models import OPEN_STATUSES, Loan
    from imali.mobilemoney.collections import collection_request

    momo = services.setup_save(entity=entity, actor=actor, data={
        "provider": "momo", "base_url": "http://127.0.0.1:9", "target_environment": "mtnzambia", "consumer_key": "u",
        "consumer_secret": "k", "callback_base_url": "http://127.0.0.1:8000/"})
    open_loan = Loan.objects.filter(entity=entity, status__in=OPEN_STATUSES).select_related("client").first()
    # Nothing listens on port 9: the request stays pending, as after an outage.
    request = collection_request(setup=momo, loan=open_loan, amount="5.00", actor=actor)
    return {"providersetup": setup, "collectionrequest": request, "providertransaction": txn, "disbursement": disbursement, "disbursementbatch": batch,
            "statementimport": statement}
