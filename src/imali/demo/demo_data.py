"""The demo book: an operator, a ZA and an NA lender with a couple of hundred clients each, and
named logins with known passwords. Idempotent: run again, it only reports the logins.

The passwords are printed and therefore public: this refuses to run when IMALI_ENV=production.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from imali.core.audit import audit_record, snapshot
from imali.core.models import AuditAction
from imali.tenancy.models import Entity, Role, User
from imali.tenancy.services import user_create

from .gateways import demo_gateways_ensure
from .generator import generate_book

DEMO_URL = "http://127.0.0.1:8000/"
DEMO_SEED = 2026
DEMO_CODE_PREFIX = "demo"
DEMO_COUNTRIES = ("ZA", "NA")
DEMO_CLIENTS = 400  # shared evenly: about 200 per lender


@dataclass(frozen=True)
class DemoLogin:
    who: str
    username: str
    password: str
    entity_code: str | None  # None: the platform operator
    role: str | None
    first_name: str
    last_name: str
    cellphone: str


DEMO_LOGINS = (
    DemoLogin("Platform operator", "operator", "Baobab-Lantern-2026", None, None, "Platform", "Operator", ""),
    DemoLogin("ZA administrator", "admin.za", "Protea-Harbour-2026", "demo-za1", "Administrator",
              "Naledi", "Khumalo", "+27825550101"),
    DemoLogin("ZA loan officer", "officer.za", "Kudu-Meadow-2026", "demo-za1", "Loan officer",
              "Sipho", "Ndlovu", "+27825550102"),
    DemoLogin("NA administrator", "admin.na", "Welwitschia-Dune-2026", "demo-na1", "Administrator",
              "Ndapewa", "Shikongo", "+264815550101"),
)


def _refuse_in_production() -> None:
    if getattr(settings, "PRODUCTION", False) or settings.IMALI_ENV == "production":
        raise ImproperlyConfigured("load_demo prints known passwords: it never runs with IMALI_ENV=production.")


def _operator(login: DemoLogin) -> User:
    existing = User.objects.filter(username__iexact=login.username).first()
    if existing is not None:
        if not existing.is_operator:
            raise ImproperlyConfigured(f"User '{login.username}' exists and is not the platform operator.")
        return existing
    operator = User(username=login.username, is_operator=True, first_name=login.first_name, last_name=login.last_name)
    password_validation.validate_password(login.password, operator)
    operator.set_password(login.password)
    operator.save()
    audit_record(action=AuditAction.USER_CREATED, actor=None, target=operator, subject=operator.username,
                 after=snapshot(operator, exclude=("password",)))
    return operator


def _entity_user(login: DemoLogin, entity: Entity) -> User:
    existing = User.objects.filter(username__iexact=login.username).first()
    if existing is not None:
        return existing
    # The generated administrator of the entity creates the demo staff, through the service.
    creator = User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()
    return user_create(
        actor=creator, entity=entity, password=login.password,
        roles=[Role.objects.get(entity=entity, name=login.role)],
        data={"username": login.username, "first_name": login.first_name, "last_name": login.last_name,
              "email": f"{login.username}@demo.example", "cellphone": login.cellphone,
              "home_branch": entity.branches.order_by("code").first()},
    )


DEMO_CREDITS = 5000


def load_demo(*, now: dt.datetime | None = None) -> tuple[bool, list[DemoLogin]]:
    """Create the demo book if it is missing. Returns (created anything, the logins)."""
    _refuse_in_production()
    created = False
    with transaction.atomic():
        operator = _operator(DEMO_LOGINS[0])
        codes = [f"{DEMO_CODE_PREFIX}-{c.lower()}1" for c in DEMO_COUNTRIES]
        if not Entity.objects.filter(code__in=codes).exists():
            generate_book(clients=DEMO_CLIENTS, seed=DEMO_SEED, actor=operator, countries=DEMO_COUNTRIES,
                          code_prefix=DEMO_CODE_PREFIX, now=now)
            # The demo lenders have bought credits from the operator, so OTPs and SMS can go out.
            from imali.messaging.credits import credits_assign

            for entity in Entity.objects.filter(code__in=codes):
                for channel in ("sms", "email"):
                    credits_assign(actor=operator, entity=entity, channel=channel, amount=DEMO_CREDITS,
                                   note="Demo credits")
            created = True
        for login in DEMO_LOGINS[1:]:
            if not User.objects.filter(username__iexact=login.username).exists():
                _entity_user(login, Entity.objects.get(code=login.entity_code))
                created = True
        # The gateways the demo's peers stand behind: the SMSC, and an HTTP aggregator as each country's failover.
        if demo_gateways_ensure(countries=DEMO_COUNTRIES):
            created = True
    return created, list(DEMO_LOGINS)
