"""Objects of every SMS-banking kind for the entity-isolation test (through the services where
they need no SMS credits)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal


def isolation_objects(*, entity, actor, client) -> dict:
    from django.utils import timezone

    from imali.loans.models import OPEN_STATUSES, Loan

    from . import rules, services
    from .models import CollectionSheet, CollectionSheetLine, CollectionSource, ProviderPayment

    alias = services.alias_add(actor=actor, entity=entity, word="Zqxbalance", command="balance")
    provider = services.provider_save(actor=actor, entity=entity, name="Zqx provider", sender="2882",
                                      pattern=services.SAMPLE_PATTERN)
    services.pin_set(actor=actor, entity=entity, client=client, pin="4826")
    found = {"keywordalias": alias, "paymentprovider": provider}
    loan = Loan.objects.filter(entity=entity, client=client, status__in=OPEN_STATUSES).order_by("id").first()
    if loan is not None:
        on = dt.date(2026, 1, 21)
        resolved = [services.Resolved(rules.Entry(client.number, loan.pk, Decimal("10.00")), client, loan)]
        _, rows = services.collections_record(entity=entity, officer=actor, resolved=resolved,
                                              source=CollectionSource.OFFICER_SMS, on=on)
        now = timezone.now()
        sheet = CollectionSheet.objects.create(entity=entity, officer=actor, code="ZQX346", due_by=on, created_by=actor,
                                               created_at=now, expires_at=now + dt.timedelta(days=3))
        CollectionSheetLine.objects.create(sheet=sheet, client=client, loan=loan, due_date=on, amount=Decimal("10.00"))
        notice = ProviderPayment.objects.create(entity=entity, provider=provider, reference="ZQXREF1", phone=client.cellphone,
                                                amount=Decimal("10.00"), client=client, loan=loan, outcome="notice_recorded",
                                                created_at=now)
        found.update({"fieldcollection": rows[0], "collectionsheet": sheet, "providerpayment": notice})
    return found
