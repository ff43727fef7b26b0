"""Objects of every loan-book kind for the entity-isolation test (built through the services)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def isolation_objects(*, entity, actor, client) -> dict:
    from imali.loans import services

    actor.disbursement_limit = Decimal("1000000")
    actor.save(update_fields=["disbursement_limit"])
    product = services.product_create(entity=entity, actor=actor, data={
        "name": "Isolation product", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    loan = services.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="1000",
                               instalments=3, applied_on=dt.date(2026, 1, 5))
    services.loan_approve(loan=loan, actor=actor)
    loan = services.loan_disburse(loan=loan, actor=actor, payout_account=client.accounts.first(), disbursed_on=dt.date(2026, 1, 5))
    receipt = services.receipt_post(entity=entity, actor=actor, loan=loan, amount="100", value_date=dt.date(2026, 1, 20),
                                    payback_type="eft", external_reference="ISO-1")
    debit = services.non_loan_debit_add(entity=entity, actor=actor, client=client, description="Isolation debit",
                                        amount="10", debit_date=dt.date(2026, 1, 6))
    # A second loan paid up with change, part of it paid back: the change-refund routes need a refund.
    overpaid = services.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="500",
                                   instalments=1, applied_on=dt.date(2026, 1, 5))
    services.loan_approve(loan=overpaid, actor=actor)
    overpaid = services.loan_disburse(loan=overpaid, actor=actor, payout_account=client.accounts.first(),
                                      disbursed_on=dt.date(2026, 1, 5))
    services.receipt_post(entity=entity, actor=actor, loan=overpaid, amount="1000", value_date=dt.date(2026, 1, 21),
                          payback_type="eft", external_reference="ISO-2")
    refund = services.change_refund(entity=entity, actor=actor, loan=overpaid, amount="10", paid_on=dt.date(2026, 1, 22),
                                    method="eft", reason="Isolation change refund")
    return {"product": product, "loan": loan, "receipt": receipt, "non_loan_debit": debit, "change_refund": refund}
