"""The demo book: an operator, a ZA and an NA lender with a couple of hundred clients each, and
named logins with known passwords, each able to do what load_demo prints it is for. Idempotent:
run again, it creates nothing new; it only sets an older demo's logins to their roles and limits
and runs a daily close not yet run for the lenders' yesterday, then reports the logins.

The passwords are printed and therefore public: this refuses to run when IMALI_ENV=production.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from imali.batches.demo_data import demo_batch_templates_ensure
from imali.core.audit import audit_record, snapshot
from imali.core.models import AuditAction
from imali.loans.daily_close import daily_close_run
from imali.marketing.demo_data import demo_custom_messages_ensure
from imali.messaging.demo import demo_reply_notify_ensure
from imali.mobilemoney.demo_data import demo_mobile_money_ensure
from imali.paystream.demo_data import demo_bank_accounts_cdv_ensure, paystream_demo_ensure
from imali.reminders.demo import demo_switch_on as reminders_demo_switch_on
from imali.smsbanking.demo_data import demo_ensure as smsbanking_demo_ensure
from imali.tenancy.models import Entity, Role, User
from imali.tenancy.rights import Right
from imali.tenancy.services import role_set_rights, user_create, user_update

from .gateways import demo_gateways_ensure
from .generator import generate_book

DEMO_URL = "http://127.0.0.1:8000/"
DEMO_SEED = 2026
DEMO_CODE_PREFIX = "demo"
DEMO_COUNTRIES = ("ZA", "NA")
DEMO_CLIENTS = 400  # shared evenly: about 200 per lender


# What a demo login is for, and the rights each of those journeys takes (the test drives them).
JOURNEYS: dict[str, tuple[str, tuple[Right, ...]]] = {
    "clients": ("create and edit clients", (Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS)),
    "apply": ("capture loan applications", (Right.CAPTURE_LOANS,)),
    "approve": ("approve loans", (Right.APPROVE_LOANS,)),
    "sign": ("enrol cellphones and sign agreements by OTP", (Right.CAPTURE_LOANS,)),
    "disburse": ("disburse loans", (Right.DISBURSE_LOANS,)),
    "receipts": ("capture receipts", (Right.CAPTURE_RECEIPTS,)),
    "sms": ("send single SMS", (Right.SEND_SINGLE_SMS,)),
    "batches": ("send message batches", (Right.MAXSMS_PROCESSING,)),
    "marketing": ("run client marketing data sets and send to them", (Right.CLIENT_MARKETING, Right.VIEW_LOGS)),
    "email": ("set up and send email", (Right.MAXMAIL_GENERAL_SETUP, Right.MAXMAIL_MESSAGE_SETUP)),
    "reports": ("run the reports", (Right.REPORT_SMS_DETAIL, Right.REPORT_CONTRACTS_ISSUED, Right.REPORT_LOGIN_DETAIL)),
}
ALL_JOURNEYS = tuple(JOURNEYS)


@dataclass(frozen=True)
class DemoLogin:
    who: str
    username: str
    password: str
    entity_code: str | None  # None: the platform operator
    roles: tuple[str, ...]
    first_name: str
    last_name: str
    cellphone: str
    disbursement_limit: Decimal = Decimal("0.00")
    journeys: tuple[str, ...] = ()

    @property
    def purpose(self) -> str:
        """What the login is for, as load_demo prints it."""
        if self.entity_code is None:
            return "entities, SMS and email credits, gateways"
        said = [JOURNEYS[j][0] for j in self.journeys]
        if "disburse" in self.journeys:
            approved = "" if "approve" in self.journeys else "approved "
            said[self.journeys.index("disburse")] = f"disburse {approved}loans up to {self.disbursement_limit:,.2f}"
        return ", ".join(said)


# The administrators do every journey; the loan officer the front desk's (an administrator
# approves: the four-eyes rule the default roles keep). Each disbursement limit covers the demo
# products the login pays out (the short-term products lend at most 8,000; the unsecured one 50,000).
DEMO_LOGINS = (
    DemoLogin("Platform operator", "operator", "Baobab-Lantern-2026", None, (), "Platform", "Operator", ""),
    DemoLogin("ZA administrator", "admin.za", "Protea-Harbour-2026", "demo-za1", ("Administrator",),
              "Naledi", "Khumalo", "+27825550101", Decimal("50000.00"), ALL_JOURNEYS),
    DemoLogin("ZA loan officer", "officer.za", "Kudu-Meadow-2026", "demo-za1", ("Loan officer",),
              "Sipho", "Ndlovu", "+27825550102", Decimal("10000.00"),
              ("clients", "apply", "sign", "disburse", "receipts", "sms")),
    DemoLogin("NA administrator", "admin.na", "Welwitschia-Dune-2026", "demo-na1", ("Administrator",),
              "Ndapewa", "Shikongo", "+264815550101", Decimal("50000.00"), ALL_JOURNEYS),
)
# The demo's loan officers pay out approved loans within their limit (the generator gives them 5,000).
DEMO_ROLE_EXTRA_RIGHTS = {"Loan officer": (Right.DISBURSE_LOANS,)}


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


def _entity_admin(entity: Entity) -> User:
    """The generated administrator of the entity: it sets up the demo staff, through the services."""
    return User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()


def _demo_roles(entity: Entity) -> bool:
    """Give the entity's roles the demo's extra rights. Returns whether anything changed."""
    changed = False
    for name, extra in DEMO_ROLE_EXTRA_RIGHTS.items():
        role = Role.objects.get(entity=entity, name=name)
        have = set(role.rights.values_list("codename", flat=True))
        if not {r.value for r in extra} <= have:
            role_set_rights(actor=_entity_admin(entity), role=role, rights=have | {r.value for r in extra})
            changed = True
    return changed


def _entity_user(login: DemoLogin, entity: Entity) -> tuple[User, bool]:
    """The login's user with the login's roles and disbursement limit (an older demo gave the
    administrators a limit of 0.00: a run sets them right). Returns (user, changed)."""
    roles = [Role.objects.get(entity=entity, name=name) for name in login.roles]
    existing = User.objects.filter(username__iexact=login.username).first()
    if existing is None:
        user = user_create(
            actor=_entity_admin(entity), entity=entity, password=login.password, roles=roles,
            data={"username": login.username, "first_name": login.first_name, "last_name": login.last_name,
                  "email": f"{login.username}@demo.example", "cellphone": login.cellphone,
                  "home_branch": entity.branches.order_by("code").first(),
                  "disbursement_limit": login.disbursement_limit},
        )
        return user, True
    if existing.entity_id != entity.pk:
        raise ImproperlyConfigured(f"User '{login.username}' exists and is not a user of {entity.code}.")
    same_roles = set(existing.roles.values_list("pk", flat=True)) == {r.pk for r in roles}
    if existing.disbursement_limit == login.disbursement_limit and same_roles:
        return existing, False
    user = user_update(actor=_entity_admin(entity), user=existing,
                       data={"disbursement_limit": login.disbursement_limit}, roles=roles)
    return user, True


def _close_yesterday(entity: Entity, now: dt.datetime) -> bool:
    """Run the entity's daily close for its local yesterday, as the scheduled task would have:
    the generated book's arrears then show in the clients' statuses (a client months in arrears
    is Bad, new loans not allowed). A close already run for that day is left as it is."""
    yesterday = now.astimezone(zoneinfo.ZoneInfo(entity.time_zone)).date() - dt.timedelta(days=1)
    _, ran = daily_close_run(entity=entity, business_date=yesterday)
    return ran


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
        entities = {e.code: e for e in Entity.objects.filter(code__in=codes)}
        for entity in entities.values():
            created |= _demo_roles(entity)
        for login in DEMO_LOGINS[1:]:
            _, changed = _entity_user(login, entities[login.entity_code])
            created |= changed
        for entity in entities.values():
            created |= _close_yesterday(entity, now or timezone.now())
        created |= reminders_demo_switch_on(entities.values())
        created |= demo_reply_notify_ensure(entities=entities.values())
        created |= smsbanking_demo_ensure(entities=entities.values())
        created |= demo_batch_templates_ensure(entities=entities.values())
        created |= demo_custom_messages_ensure(entities=entities.values())
        # The gateways the demo's peers stand behind: the SMSC, and an HTTP aggregator as each country's failover.
        if demo_gateways_ensure(countries=DEMO_COUNTRIES):
            created = True
        created |= demo_mobile_money_ensure()
        created |= paystream_demo_ensure(entity_codes=codes)
        created |= demo_bank_accounts_cdv_ensure(entity_codes=codes)
    return created, list(DEMO_LOGINS)
