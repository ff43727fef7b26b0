"""SMS banking in `make demo`: switched on for the demo lenders, one ZA client on a fixed phone
(+27825550199, PIN 4826) to text BALANCE from the SMSC's phone page, the ZA loan officer's
(+27825550102) clients to collect from, an Afrikaans alias and a mobile-money provider."""

from __future__ import annotations

from imali.clients.models import Client
from imali.loans.models import OPEN_STATUSES, Loan
from imali.tenancy.models import Entity, User

from . import services
from .models import BankingSettings, KeywordAlias, PaymentProvider

DEMO_CLIENT_PHONE = "+27825550199"
DEMO_PIN = "4826"
DEMO_OFFICER = "officer.za"


def demo_ensure(*, entities) -> bool:
    """Idempotent: True when it changed anything."""
    changed = False
    for entity in sorted(entities, key=lambda e: e.country != "ZA"):
        if BankingSettings.objects.filter(entity=entity, enabled=True).exists():
            continue
        admin = User.objects.filter(entity=entity, is_active=True).order_by("id").first()
        # One lender answers the demo SMSC's "Imali" address for phones no lender knows.
        address = "Imali" if entity.country == "ZA" else ""
        services.settings_update(actor=admin, entity=entity, data={"enabled": True, "service_address": address})
        changed = True
        if entity.country == "ZA":
            _za_book(entity, admin)
    return changed


def _za_book(entity: Entity, admin: User) -> None:
    borrowers = list(Loan.objects.filter(entity=entity, status__in=OPEN_STATUSES).order_by("client__number")
                     .values_list("client_id", flat=True).distinct()[:13])
    if borrowers:
        # A known phone for the phone page; the demo book's numbers are random.
        Client.objects.filter(entity=entity, cellphone=DEMO_CLIENT_PHONE).update(cellphone="")
        Client.objects.filter(pk=borrowers[0]).update(cellphone=DEMO_CLIENT_PHONE)
        services.pin_set(actor=admin, entity=entity, client=Client.objects.get(pk=borrowers[0]), pin=DEMO_PIN)
    officer = User.objects.filter(entity=entity, username=DEMO_OFFICER).first()
    if officer is not None and borrowers:
        Client.objects.filter(pk__in=borrowers[1:]).update(salesperson=officer)
    if not KeywordAlias.objects.filter(entity=entity, word="BALANS").exists():
        services.alias_add(actor=admin, entity=entity, word="BALANS", command="balance")
    if not PaymentProvider.objects.filter(entity=entity).exists():
        services.provider_save(actor=admin, entity=entity, name="MoMo", sender="MOMO", pattern=services.SAMPLE_PATTERN)
