"""Generate a realistic lender book at scale: entities, places, staff, employers, clients, accounts.

Use
---
    summary = generate_book(clients=1_000_000, seed=42, actor=operator)

creates `entities_per_country` entities in each of `countries` (default ZA, NA, BW, SZ, ZM) and
shares the clients evenly between them (the first entities take the remainder). Everything is
drawn from one `random.Random(seed)`: the same seed on the same code gives the same book (database
ids and entity codes aside, which depend on what the database holds already).

What is built how
-----------------
* Entities through `tenancy.services.entity_create` (so each gets the default roles), regions,
  branches, employers and paypoints through their services: they are few, and going through the
  services keeps their validation (branch and employer telephones) and their audit entries.
* Staff users are bulk-inserted with unusable passwords (generated staff never sign in; the
  named demo logins come from `load_demo`), with roles and home branches.
* Clients and client accounts — the bulk — are written without the ORM: rows are built as tuples
  and written in large batches (`executemany` on SQLite, `COPY ... FROM STDIN` on PostgreSQL), one
  transaction per entity. Columns come from the models' `_meta`, so a renamed or removed field
  fails loudly at the start and a new field with a default is filled with that default; a new
  required field without a default stops the run naming it.
* Every value is valid by construction, never checked per row in the hot path: SA ID numbers are
  date of birth + gender sequence + citizenship + 8 + Luhn digit; cellphones are E.164 mobiles
  from prefixes phonenumbers accepts for the entity's country; tests/demo check samples with
  python-stdnum and phonenumbers.
* Client numbers are sequential per entity, starting at the entity's `next_client_number`, which
  is advanced in the same transaction under a row lock, exactly as `client_create` does.

Why no audit entry per generated row: this is a data load, not the act of a user. Writing a
million audit rows would double the load and record nothing a person did. The run is reported as a
whole instead — the `generate_book` command prints the counts and the time, and the module logs one
summary line at INFO on the "imali.demo" logger and writes one `data.generated` audit entry per
entity with the counts.

Extension point
---------------
`BOOK_EXTENSIONS` is a list of callables run after every entity's clients and accounts are
written, each in its own transaction, in list order:

    def add_loans(connection, summary: BookSummary, rng: random.Random) -> None: ...
    BOOK_EXTENSIONS.append(add_loans)

`connection` is Django's database connection (write in bulk the same way: see
`table_columns`, `reserve_ids`, `write_rows`, `datetime_text`), `summary.entities` holds per entity the
contiguous client id range (`first_client_id`..`last_client_id`), the client number range, branch,
staff and employer ids; `rng` is the generator's own random source, already advanced past the
clients, so an extension's output is deterministic for the seed too. `generate_book(extensions=...)`
replaces the list for one call.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.core.exceptions import ImproperlyConfigured
from django.db import connection as default_connection
from django.db import models, transaction
from django.utils import timezone

from imali.clients.models import (
    AccountKind,
    AccountPurpose,
    Client,
    ClientAccount,
    ClientStatus,
    PaymentFrequency,
    PaymentMoveDirection,
)
from imali.clients.services import employer_create, paypoint_create
from imali.core.audit import audit_record
from imali.core.countries import COUNTRY_FACTS
from imali.core.idnumbers import Gender, IdType
from imali.core.models import AuditAction
from imali.tenancy.models import Branch, Entity, Module, Role, User
from imali.tenancy.services import branch_create, entity_create, region_create

from .regional import (
    COUNTRY_BOOKS,
    EMPLOYER_TEMPLATES,
    LENDER_NAMES,
    LENDER_SUFFIXES,
    NOTES,
    STREET_KINDS,
    STREETS,
    CountryBook,
    Town,
)

logger = logging.getLogger("imali.demo")

COUNTRIES: tuple[str, ...] = ("ZA", "NA", "BW", "SZ", "ZM")
DEFAULT_BATCH_ROWS = 20_000
# Generated clients were taken on over this many days before `now`, in client-number order.
BOOK_HISTORY_DAYS = 6 * 365

Extension = Callable[..., None]
BOOK_EXTENSIONS: list[Extension] = []
Progress = Callable[[int, int, str], None]


@dataclass
class EntityBook:
    """What one generated entity holds. Client ids and numbers are contiguous ranges."""

    entity_id: int
    code: str
    country: str
    currency: str
    time_zone: str
    first_client_id: int
    last_client_id: int
    first_client_number: int
    last_client_number: int
    client_count: int
    account_count: int
    branch_ids: list[int] = field(default_factory=list)
    user_ids: list[int] = field(default_factory=list)
    employer_ids: list[int] = field(default_factory=list)

    @property
    def client_ids(self) -> range:
        return range(self.first_client_id, self.last_client_id + 1)


@dataclass
class BookSummary:
    seed: int
    database: str
    now: dt.datetime
    entities: list[EntityBook] = field(default_factory=list)
    clients: int = 0
    accounts: int = 0
    users: int = 0
    employers: int = 0
    seconds: float = 0.0
    # Of `seconds`, the time spent in the database writing clients and accounts.
    write_seconds: float = 0.0


# --- Writing rows without the ORM ---------------------------------------------------------------


def table_columns(model: type[models.Model], produced: Sequence[str], connection=None) -> tuple[str, list[str], tuple]:
    """The table, the column names for `produced` (field attnames) plus every other concrete
    field, and the constant values (prepared defaults) to append to each produced row.

    A produced name that is no field raises (the model changed under the generator); a field the
    generator does not produce gets its default, or raises if it has none and is required.
    """
    conn = connection or default_connection
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    unknown = [name for name in produced if name not in by_attname]
    if unknown:
        raise ImproperlyConfigured(f"{model._meta.label} has no field {', '.join(unknown)}: update imali.demo.generator.")
    columns = [by_attname[name].column for name in produced]
    extras: list = []
    for attname, f in by_attname.items():
        if attname in produced or (f.primary_key and f.auto_created) or isinstance(f, models.AutoField):
            continue
        if f.has_default():
            value = f.get_db_prep_save(f.get_default(), connection=conn)
        elif f.null:
            value = None
        else:
            raise ImproperlyConfigured(
                f"{model._meta.label}.{attname} is required and has no default: teach imali.demo.generator to fill it."
            )
        columns.append(f.column)
        extras.append(value)
    return model._meta.db_table, columns, tuple(extras)


def write_rows(connection, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Insert `rows` (tuples in `columns` order): COPY on PostgreSQL, executemany elsewhere."""
    qn = connection.ops.quote_name
    column_sql = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {qn(table)} ({column_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {qn(table)} ({column_sql}) VALUES ({placeholders})", rows)


def datetime_text(connection, value: dt.datetime) -> str:
    """An aware datetime as bulk-write text for `connection`: UTC, with the offset on PostgreSQL,
    naive on SQLite (as Django stores it there)."""
    utc = value.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(" ") + ("+00:00" if connection.vendor == "postgresql" else "")


def reserve_ids(connection, model: type[models.Model], count: int) -> int:
    """Reserve `count` consecutive primary keys of `model`'s table; return the first.

    Call inside the transaction that inserts them. SQLite: the write transaction holds the
    database lock and explicit ids advance AUTOINCREMENT's sqlite_sequence by themselves.
    PostgreSQL: the table lock keeps other inserters (and their nextval) out until commit.
    """
    table = model._meta.db_table
    pk = model._meta.pk.column
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {qn(table)} IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, pk])
            sequence = cursor.fetchone()[0]
            cursor.execute(f"SELECT nextval(%s), (SELECT COALESCE(MAX({qn(pk)}), 0) FROM {qn(table)})", [sequence])
            next_value, highest = cursor.fetchone()
            first = max(next_value, highest + 1)
            cursor.execute("SELECT setval(%s, %s)", [sequence, first + count - 1])
            return first
        if connection.vendor == "sqlite":
            cursor.execute(f"SELECT COALESCE(MAX({qn(pk)}), 0) FROM {qn(table)}")
            highest = cursor.fetchone()[0]
            cursor.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = %s", [table])
            return max(highest, cursor.fetchone()[0]) + 1
    raise ImproperlyConfigured(f"The book generator supports SQLite and PostgreSQL, not {connection.vendor}.")


# --- Valid values by construction ---------------------------------------------------------------

# Luhn: digit at an odd distance from the check digit is doubled (and 9 taken off past 9).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_check_digit(payload: str) -> str:
    total = 0
    for distance, char in enumerate(reversed(payload), start=1):
        d = ord(char) - 48
        total += _DOUBLED[d] if distance % 2 else d
    return str((10 - total % 10) % 10)


def _luhn_part(digits: str, first_index: int) -> int:
    """Luhn sum of `digits` standing at `first_index` of a 12-digit payload (check digit is 13th)."""
    total = 0
    for i, char in enumerate(digits, start=first_index):
        d = ord(char) - 48
        # In a 12-digit payload the odd indexes are an odd distance from the check digit.
        total += _DOUBLED[d] if i % 2 else d
    return total


# SSSS (indexes 6–9) Luhn parts, computed once: 0000–4999 female, 5000–9999 male.
_SEQUENCE_LUHN = [_luhn_part(f"{s:04d}", 6) for s in range(10000)]
# Citizenship digit (index 10) followed by the fixed "8" (index 11).
_TAIL_LUHN = {c: _luhn_part(f"{c}8", 10) for c in (0, 1)}


def sa_id_number(yymmdd: str, date_luhn: int, sequence: int, citizen_digit: int) -> str:
    total = date_luhn + _SEQUENCE_LUHN[sequence] + _TAIL_LUHN[citizen_digit]
    return f"{yymmdd}{sequence:04d}{citizen_digit}8{(10 - total % 10) % 10}"


def sa_tax_number(rng: random.Random) -> str:
    payload = f"{rng.choice('0123')}{rng.randrange(10**8):08d}"
    return payload + luhn_check_digit(payload)


# --- The structure of one entity -----------------------------------------------------------------


@dataclass
class _Place:
    branch: Branch
    town: Town
    region: str
    staff: list[User]
    officers: list[User]


@dataclass
class _EmployerChoice:
    employer_id: int
    classification: str
    paypoint_ids: list[int]
    occupations: tuple[str, ...]
    telephone: str
    prefix: str


def _landline(book: CountryBook, town: Town, rng: random.Random) -> str:
    width = book.landline_length - len(town.landline_prefix)
    return f"+{book.dialling_code}{town.landline_prefix}{rng.randrange(10**width):0{width}d}"


def _mobile(book: CountryBook, rng: random.Random) -> str:
    width = book.mobile_length - 2
    return f"+{book.dialling_code}{rng.choice(book.mobile_prefixes)}{rng.randrange(10**width):0{width}d}"


def _unique_value(model: type[models.Model], field_name: str, wanted: str, *, max_length: int, sep: str = "-") -> str:
    candidate, n = wanted[:max_length], 1
    while model.objects.filter(**{f"{field_name}__iexact": candidate}).exists():
        n += 1
        suffix = f"{sep}{n}"
        candidate = wanted[: max_length - len(suffix)] + suffix
    return candidate


def _branch_count(client_count: int) -> int:
    # A micro-lender branch carries a few thousand clients; small books still get three branches.
    return max(3, min(12, client_count // 4000 + 3))


def _build_entity(*, actor: User, country: str, index: int, code_prefix: str, client_count: int,
                  rng: random.Random, now: dt.datetime) -> tuple[Entity, list[_Place], list[_EmployerChoice], User]:
    book = COUNTRY_BOOKS[country]
    trading = rng.choice(LENDER_NAMES)
    legal = "Limited" if country == "ZM" else "(Pty) Ltd"
    name = f"{trading} {rng.choice(LENDER_SUFFIXES)} {legal}"
    registration = f"{rng.randrange(1995, 2024)}/{rng.randrange(10**6):06d}/07" if country == "ZA" else ""
    ncr = f"NCRCP{rng.randrange(1000, 20000)}" if country == "ZA" else ""
    entity = entity_create(actor=actor, data={
        "name": _unique_value(Entity, "name", name, max_length=120, sep=" "),
        "code": _unique_value(Entity, "code", f"{code_prefix}-{country.lower()}{index}", max_length=30),
        "country": country,
        "modules": [m for m in Module.values if Module(m).offered_in(country)],  # no payment stream outside ZA
        "registration_number": registration,
        "ncr_number": ncr,
        "marketing_consent_not_required": False,
    })
    roles = {r.name: r for r in Role.objects.filter(entity=entity)}

    wanted = _branch_count(client_count)
    # Spread over as many towns as possible: every town's first area before any town's second.
    towns = [(region, town) for region, region_towns in book.regions.items() for town in region_towns]
    rng.shuffle(towns)
    slots = [(region, town, town.areas[a]) for a in range(2) for region, town in towns]
    slots = sorted(slots[:wanted], key=lambda s: (s[0], s[1].name, s[2]))
    regions = {}
    branches: list[tuple[Branch, Town, str]] = []
    for n, (region_name, town, area) in enumerate(slots, start=1):
        if region_name not in regions:
            regions[region_name] = region_create(actor=actor, entity=entity, name=region_name)
        branch = branch_create(actor=actor, entity=entity, data={
            "code": f"B{n:02d}",
            "name": area if area != town.name else f"{town.name} Central",
            "region": regions[region_name],
            "telephone": _landline(book, town, rng),
            "address": f"Shop {rng.randrange(1, 40)}, {area} Mall, {STREETS[rng.randrange(len(STREETS))]} Street, {town.name}",
        })
        branches.append((branch, town, region_name))

    # Staff: one administrator; per branch a manager and two loan officers. Bulk, unusable passwords.
    staff_plan: list[tuple[User, str]] = []
    usernames: set[str] = set()

    def staff(role_name: str, branch: Branch) -> User:
        gender = rng.random() < 0.5
        first = rng.choice(book.male_names if gender else book.female_names)
        last = rng.choice(book.surnames)
        base = f"{entity.code}.{first[0]}{last}".lower().replace(" ", "")
        username, n = base, 1
        while username in usernames:
            n += 1
            username = f"{base}{n}"
        usernames.add(username)
        user = User(
            username=username, entity=entity, home_branch=branch, first_name=first, last_name=last,
            email=f"{username.split('.', 1)[1]}@{entity.code}.example", cellphone=_mobile(book, rng),
            password=make_password(None), is_active=True, date_joined=now,
            disbursement_limit=50000 if role_name != "Loan officer" else 5000,
        )
        staff_plan.append((user, role_name))
        return user

    admin = staff("Administrator", branches[0][0])
    places = []
    for branch, town, region_name in branches:
        manager = staff("Branch manager", branch)
        officers = [staff("Loan officer", branch), staff("Loan officer", branch)]
        places.append(_Place(branch, town, region_name, [manager, *officers], officers))
    User.objects.bulk_create([u for u, _ in staff_plan])
    User.roles.through.objects.bulk_create(
        [User.roles.through(user_id=u.pk, role_id=roles[role_name].pk) for u, role_name in staff_plan]
    )

    # Employers: the common kinds filled with the entity's own places, plus the country's big ones.
    employers: list[_EmployerChoice] = []
    seen: set[str] = set()
    templates = EMPLOYER_TEMPLATES["common"] + EMPLOYER_TEMPLATES.get(country, ())
    for pattern, classification, sector, paypoints, occupations in templates:
        place = rng.choice(places)
        employer_name = pattern.format(town=place.town.name, region=place.region)
        if employer_name.lower() in seen:
            continue
        seen.add(employer_name.lower())
        telephone = _landline(book, place.town, rng)
        employer = employer_create(entity=entity, actor=admin, data={
            "name": employer_name, "classification": classification, "economic_sector": sector,
            "telephone": telephone,
            "address": f"{rng.randrange(1, 200)} {rng.choice(STREETS)} Street, {place.town.name}",
        })
        paypoint_ids = []
        for p in range(1, paypoints + 1):
            pp_place = rng.choice(places)
            paypoint = paypoint_create(
                employer=employer, actor=admin, number=f"{p:03d}",
                name=f"{pp_place.town.name} {rng.choice(pp_place.town.areas)}",
                address=f"{rng.randrange(1, 200)} {rng.choice(STREETS)} Street, {pp_place.town.name}",
            )
            paypoint_ids.append(paypoint.pk)
        prefix = "".join(w[0] for w in employer_name.split() if w[0].isalpha()).upper()[:3]
        employers.append(_EmployerChoice(employer.pk, classification, paypoint_ids, occupations, employer.telephone, prefix))
    return entity, places, employers, admin


# --- Clients ------------------------------------------------------------------------------------

CLIENT_FIELDS = (
    "id", "entity_id", "branch_id", "number", "title", "initials", "full_names", "name", "surname",
    "id_number", "id_type", "gender", "date_of_birth", "cellphone", "home_phone", "work_phone", "email",
    "physical_address", "postal_address", "area", "tax_number", "original_client_number", "status",
    "new_loans_allowed", "salesperson_id", "marketing_consent", "insolvent", "garnishee",
    "historically_disadvantaged", "salary", "bonus_month", "payment_frequency", "payment_day",
    "payment_move_direction", "credit_limit", "employer_id", "paypoint_id", "employee_number",
    "occupation", "appointment_type", "commencement_of_service", "contract_expiry_date",
    "other_employer_reference", "notes", "created_by_id", "created_at", "updated_at",
)
ACCOUNT_FIELDS = (
    "client_id", "kind", "purpose", "bank_name", "branch_code", "account_number", "account_type",
    "wallet_provider", "wallet_number", "is_active", "created_at",
)

# (status, per mille) — most of a book is in good standing.
_STATUS_TABLE = (
    (ClientStatus.GOOD, 800), (ClientStatus.INACTIVE, 100), (ClientStatus.BAD, 50),
    (ClientStatus.DEBT_REVIEW, 20), (ClientStatus.HANDED_OVER, 15), (ClientStatus.BLACKLISTED, 10),
    (ClientStatus.DECEASED, 5),
)
_STATUSES = [str(s) for s, weight in _STATUS_TABLE for _ in range(weight)]

# Salary band in ZAR cents (low, high) and how people of each employer kind are appointed and paid.
_SALARY_BANDS = {
    "government": (900_000, 3_800_000), "parastatal": (1_200_000, 4_000_000), "private": (450_000, 2_200_000),
    "mining": (1_000_000, 3_200_000), "informal": (250_000, 900_000), "social_grant": (208_000, 232_000),
    "pension": (300_000, 1_600_000),
}
_APPOINTMENTS = {
    "government": ("permanent",) * 9 + ("contract",), "parastatal": ("permanent",) * 4 + ("contract",),
    "private": ("permanent",) * 6 + ("contract",) * 3 + ("temporary",), "mining": ("permanent",) * 5 + ("contract",),
    "informal": ("self_employed",), "social_grant": ("",), "pension": ("pensioner",),
}
_MONTH_DAYS = {
    "government": (15, 15, 15, 20), "parastatal": (25, 25, 15), "private": (25, 25, 26, 28, 30, 31, 15),
    "mining": (25, 25, 20), "informal": (1, 7, 15, 25, 30), "social_grant": (1, 2, 3, 4, 5, 6, 7),
    "pension": (1, 1, 25),
}
_MALE_TITLES = ("Mr",) * 48 + ("Dr", "Rev")
_FEMALE_TITLES = ("Mrs",) * 22 + ("Ms",) * 17 + ("Miss",) * 9 + ("Dr", "Prof")
_BANK_TYPES = ("cheque",) * 11 + ("savings",) * 7 + ("transmission",) * 2
_PURPOSES = ("both",) * 17 + ("payback",) * 2 + ("payout",)
# Choice values as plain strings: an enum member's .value costs a descriptor call per row.
_MALE, _FEMALE = Gender.MALE.value, Gender.FEMALE.value
_MONTHLY, _WEEKLY, _FORTNIGHTLY = (PaymentFrequency.MONTHLY.value, PaymentFrequency.WEEKLY.value,
                                   PaymentFrequency.FORTNIGHTLY.value)
_BEFORE, _AFTER = PaymentMoveDirection.BEFORE.value, PaymentMoveDirection.AFTER.value
_BANK, _WALLET = AccountKind.BANK.value, AccountKind.WALLET.value
_PAYOUT, _BOTH = AccountPurpose.PAYOUT.value, AccountPurpose.BOTH.value


def _date_facts(ordinal: int, cache: dict) -> tuple[str, str, int, int]:
    """ISO date, YYMMDD, its Luhn part (SA ID indexes 0–5), and the month, cached per day."""
    facts = cache.get(ordinal)
    if facts is None:
        day = dt.date.fromordinal(ordinal)
        yymmdd = f"{day.year % 100:02d}{day.month:02d}{day.day:02d}"
        facts = (day.isoformat(), yymmdd, _luhn_part(yymmdd, 0), day.month)
        cache[ordinal] = facts
    return facts


@dataclass
class _ClientPlan:
    entity: Entity
    book: CountryBook
    places: list[_Place]
    employers: list[_EmployerChoice]
    first_id: int
    first_number: int
    count: int
    now: dt.datetime
    datetime_suffix: str


def _client_batches(plan: _ClientPlan, rng: random.Random, batch_rows: int,
                    client_extras: tuple, account_extras: tuple):
    """Yield (client rows, account rows) per batch. Hot path: local names, no validation calls."""
    r = rng.random
    randrange = rng.randrange
    entity_id = plan.entity.pk
    country = plan.entity.country
    book = plan.book
    is_za = country == "ZA"
    cc = book.dialling_code
    males, females, surnames = book.male_names, book.female_names, book.surnames
    n_m, n_f, n_s = len(males), len(females), len(surnames)
    mobile_prefixes = [int(p) for p in book.mobile_prefixes]
    mobile_scale = 10 ** (book.mobile_length - 2)
    # Per branch: (branch id, town, staff ids, loan officer ids), ids read once, not per row.
    places = [(p.branch.pk, p.town, [u.pk for u in p.staff], [u.pk for u in p.officers]) for p in plan.places]
    n_places = len(places)
    # Government, grant and pension employers carry more borrowers than a corner shop.
    weighted_employers = []
    for e in plan.employers:
        weight = {"government": 6, "social_grant": 4, "mining": 4, "parastatal": 3, "pension": 2}.get(e.classification, 2)
        weighted_employers.extend([e] * weight)
    n_emp = len(weighted_employers)
    banks = book.banks
    wallet_cut = book.wallet_per_mille / 1000
    bank_cut = 0.92 if is_za else 0.7
    factor = book.salary_factor
    domains = book.email_domains
    id_type = IdType.SA_ID.value if is_za else IdType.NATIONAL_ID.value
    suffix = plan.datetime_suffix
    today_ord = plan.now.date().toordinal()
    first_day_ord = today_ord - BOOK_HISTORY_DAYS
    date_cache: dict = {}
    used_ids: set = set()
    used_cells: set[int] = set()
    year_days = 365.25
    streets, n_streets = STREETS, len(STREETS)
    kinds = STREET_KINDS

    clients: list[tuple] = []
    accounts: list[tuple] = []
    for i in range(plan.count):
        number = plan.first_number + i
        client_id = plan.first_id + i
        branch_id, town, staff_ids, officer_ids = places[int(r() * n_places)]
        male = r() < 0.48
        if male:
            first = males[int(r() * n_m)]
            second = males[int(r() * n_m)] if r() < 0.55 else ""
            title = _MALE_TITLES[int(r() * 50)]
            gender = _MALE
        else:
            first = females[int(r() * n_f)]
            second = females[int(r() * n_f)] if r() < 0.55 else ""
            title = _FEMALE_TITLES[int(r() * 50)]
            gender = _FEMALE
        if second == first:
            second = ""
        full_names = f"{first} {second}" if second else first
        initials = f"{first[0]}{second[0]}" if second else first[0]
        surname = surnames[int(r() * n_s)]

        employer = weighted_employers[int(r() * n_emp)] if r() < 0.93 else None
        kind = employer.classification if employer else "informal"

        # Taken on in number order across the history; business hours, local morning in UTC.
        created_ord = first_day_ord + (i * BOOK_HISTORY_DAYS) // plan.count
        created_iso = (date_cache.get(created_ord) or _date_facts(created_ord, date_cache))[0]
        seconds = 21600 + int(r() * 32400)
        created_at = f"{created_iso} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{suffix}"

        if kind in ("pension", "social_grant"):
            age_days = int((58 + r() * 20) * year_days)
        else:
            age_days = int((19 + r() * 44) * year_days)
        dob_ord = created_ord - age_days
        dob_iso, yymmdd, date_luhn, birth_month = date_cache.get(dob_ord) or _date_facts(dob_ord, date_cache)

        if is_za:
            citizen = 0 if r() < 0.95 else 1
            while True:
                sequence = int(r() * 5000) + (5000 if male else 0)
                id_number = sa_id_number(yymmdd, date_luhn, sequence, citizen)
                if id_number not in used_ids:
                    break
        else:
            while True:
                if country == "NA":
                    id_number = f"{yymmdd}{randrange(100000):05d}"
                elif country == "SZ":
                    id_number = f"{yymmdd}{randrange(10**7):07d}"
                elif country == "BW":
                    id_number = f"{randrange(10000):04d}{1 if male else 2}{randrange(10000):04d}"
                else:
                    id_number = f"{randrange(100000, 1000000)}/{randrange(10, 100)}/1"
                if id_number not in used_ids:
                    break
        used_ids.add(id_number)

        while True:
            national = mobile_prefixes[int(r() * len(mobile_prefixes))] * mobile_scale + int(r() * mobile_scale)
            if national not in used_cells:
                break
        used_cells.add(national)
        cellphone = f"+{cc}{national}"

        area = town.areas[int(r() * len(town.areas))]
        house = int(r() * 4000) + 1
        street = f"{streets[int(r() * n_streets)]} {kinds[int(r() * 7)]}"
        code = f", {town.postal_code}" if town.postal_code else ""
        physical = f"{house} {street}, {area}, {town.name}{code}"
        postal = f"PO Box {int(r() * 9000) + 10}, {town.name}{code}" if r() < 0.35 else physical
        home_phone = ""
        if r() < 0.2:
            width = book.landline_length - len(town.landline_prefix)
            home_phone = f"+{cc}{town.landline_prefix}{int(r() * 10**width):0{width}d}"
        email = ""
        if r() < 0.3:
            handle = f"{first}.{surname}".lower().replace(" ", "")
            email = f"{handle}{int(r() * 90) + 10}@{domains[int(r() * len(domains))]}"

        status = _STATUSES[int(r() * 1000)]
        good = status in ("good", "inactive")
        new_loans_allowed = good and r() < 0.96
        salesperson = officer_ids[int(r() * len(officer_ids))] if r() < 0.7 else None
        created_by = staff_ids[int(r() * len(staff_ids))]

        low, high = _SALARY_BANDS[kind]
        salary_cents = int((low + r() * (high - low)) * factor)
        salary = f"{salary_cents // 100}.{salary_cents % 100:02d}"
        if kind == "government" and is_za:
            bonus_month = birth_month  # the public service pays the 13th cheque in the birthday month
        elif kind in ("government", "parastatal", "mining") or (kind == "private" and r() < 0.4):
            bonus_month = 12 if r() < 0.7 else 11
        else:
            bonus_month = None
        if kind in ("informal", "private") and r() < 0.25:
            frequency = _WEEKLY if r() < 0.7 else _FORTNIGHTLY
            payment_day = 5 if r() < 0.8 else 4
        else:
            frequency = _MONTHLY
            days = _MONTH_DAYS[kind]
            payment_day = days[int(r() * len(days))]
        move = _BEFORE if r() < 0.9 else _AFTER
        credit_limit = f"{(salary_cents // 400) // 100 * 100}.00" if r() < 0.6 else None

        appointment = _APPOINTMENTS[kind][int(r() * len(_APPOINTMENTS[kind]))]
        if employer is not None:
            paypoint = employer.paypoint_ids[int(r() * len(employer.paypoint_ids))]
            occupation = employer.occupations[int(r() * len(employer.occupations))]
            employee_number = "" if kind in ("social_grant", "informal") else f"{employer.prefix}{int(r() * 10**7):07d}"
            work_phone = employer.telephone if r() < 0.35 else ""
            employer_id = employer.employer_id
        else:
            paypoint = employer_id = None
            occupation = ("Hawker", "Domestic worker", "Gardener", "Hairdresser")[int(r() * 4)]
            employee_number = work_phone = ""
        if appointment in ("", "pensioner"):
            commencement = None
        else:
            start_ord = dob_ord + int(18 * year_days) + int(r() * (created_ord - dob_ord - 18 * year_days))
            commencement = _date_facts(start_ord, date_cache)[0]
        expiry = None
        if appointment in ("contract", "temporary"):
            expiry = _date_facts(created_ord + 60 + int(r() * 700), date_cache)[0]

        tax_number = sa_tax_number(rng) if is_za and r() < 0.25 else ""
        original = f"L{int(r() * 10**6):06d}" if r() < 0.08 else ""
        other_ref = f"REF{int(r() * 10**5):05d}" if r() < 0.05 else ""
        notes = NOTES[int(r() * len(NOTES))] if r() < 0.05 else ""

        clients.append((
            client_id, entity_id, branch_id, number, title, initials, full_names, first, surname,
            id_number, id_type, gender, dob_iso, cellphone, home_phone, work_phone, email,
            physical, postal, area, tax_number, original, status,
            new_loans_allowed, salesperson, r() < 0.6, r() < 0.005, r() < 0.02,
            is_za and r() < 0.8, salary, bonus_month, frequency, payment_day,
            move, credit_limit, employer_id, paypoint, employee_number,
            occupation, appointment, commencement, expiry,
            other_ref, notes, created_by, created_at, created_at,
        ) + client_extras)

        if r() < bank_cut:
            bank_name, branch_code, lead, length = banks[int(r() * len(banks))]
            width = length - len(lead)
            account_type = "savings" if bank_name == "Capitec" else _BANK_TYPES[int(r() * 20)]
            accounts.append((
                client_id, _BANK, _PURPOSES[int(r() * 20)], bank_name, branch_code,
                f"{lead}{int(r() * 10**width):0{width}d}", account_type, "", "", True, created_at,
            ) + account_extras)
        if r() < wallet_cut:
            accounts.append((
                client_id, _WALLET, _PAYOUT if r() < 0.5 else _BOTH,
                "", "", "", "", book.wallets[int(r() * len(book.wallets))], cellphone, True, created_at,
            ) + account_extras)

        if len(clients) >= batch_rows:
            yield clients, accounts
            clients, accounts = [], []
    if clients:
        yield clients, accounts


def _write_clients(*, connection, entity: Entity, places, employers, count: int, rng: random.Random,
                   now: dt.datetime, batch_rows: int, progress: Progress | None, done_before: int,
                   total: int) -> tuple[EntityBook, float]:
    client_table, client_columns, client_extras = table_columns(Client, CLIENT_FIELDS, connection)
    account_table, account_columns, account_extras = table_columns(ClientAccount, ACCOUNT_FIELDS, connection)
    # Numbers are handed out under the entity's row lock, as client_create does.
    locked = Entity.objects.select_for_update().only("id", "next_client_number").get(pk=entity.pk)
    first_number = locked.next_client_number
    first_id = reserve_ids(connection, Client, count) if count else 0
    plan = _ClientPlan(
        entity=entity, book=COUNTRY_BOOKS[entity.country], places=places, employers=employers,
        first_id=first_id, first_number=first_number, count=count, now=now,
        datetime_suffix="+00:00" if connection.vendor == "postgresql" else "",
    )
    written = accounts_written = 0
    write_seconds = 0.0
    for client_rows, account_rows in _client_batches(plan, rng, batch_rows, client_extras, account_extras):
        writing = time.perf_counter()
        write_rows(connection, client_table, client_columns, client_rows)
        write_rows(connection, account_table, account_columns, account_rows)
        write_seconds += time.perf_counter() - writing
        written += len(client_rows)
        accounts_written += len(account_rows)
        if progress:
            progress(done_before + written, total, f"{entity.code}: {written:,} of {count:,} clients")
    Entity.objects.filter(pk=entity.pk).update(next_client_number=first_number + count)
    entity_book = EntityBook(
        entity_id=entity.pk, code=entity.code, country=entity.country, currency=entity.currency,
        time_zone=entity.time_zone, first_client_id=first_id, last_client_id=first_id + count - 1,
        first_client_number=first_number, last_client_number=first_number + count - 1,
        client_count=count, account_count=accounts_written,
        branch_ids=[p.branch.pk for p in places],
        user_ids=sorted({u.pk for p in places for u in p.staff}),
        employer_ids=[e.employer_id for e in employers],
    )
    return entity_book, write_seconds


class _SqliteBulkSettings:
    """Loosen SQLite durability for the load and put it back afterwards.

    synchronous=OFF skips fsync: a crash mid-load can lose the load (rerun it), never other data
    already committed. Only outside a transaction: SQLite ignores the change inside one.
    """

    def __init__(self, connection):
        self.connection = connection
        self.saved: dict[str, object] = {}

    def __enter__(self):
        if self.connection.vendor != "sqlite" or self.connection.in_atomic_block:
            return self
        with self.connection.cursor() as cursor:
            for pragma, value in (("synchronous", 0), ("cache_size", -262144)):
                cursor.execute(f"PRAGMA {pragma}")
                self.saved[pragma] = cursor.fetchone()[0]
                cursor.execute(f"PRAGMA {pragma} = {value}")
        return self

    def __exit__(self, *exc):
        if self.saved:
            with self.connection.cursor() as cursor:
                for pragma, value in self.saved.items():
                    cursor.execute(f"PRAGMA {pragma} = {int(value)}")
                # A load leaves a write-ahead log the size of everything written: hand it back.
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return False


def generate_book(
    *,
    clients: int,
    seed: int,
    actor: User,
    countries: Sequence[str] = COUNTRIES,
    entities_per_country: int = 1,
    code_prefix: str | None = None,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
    extensions: Sequence[Extension] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    connection=None,
) -> BookSummary:
    """Generate `clients` clients over `entities_per_country` entities in each of `countries`."""
    if not (actor.is_operator or actor.is_superuser):
        raise PermissionError("Only the platform operator generates books.")
    unknown = [c for c in countries if c not in COUNTRY_FACTS]
    if unknown or not countries:
        raise ValueError(f"Countries must be among {', '.join(COUNTRIES)}; got {', '.join(unknown) or 'none'}.")
    if clients < 0 or entities_per_country < 1:
        raise ValueError("clients must be 0 or more and entities_per_country 1 or more.")
    connection = connection or default_connection
    started = time.perf_counter()
    rng = random.Random(seed)
    now = now or timezone.now()
    code_prefix = code_prefix or f"s{seed}"
    slots = [(country, k) for k in range(1, entities_per_country + 1) for country in countries]
    share, extra = divmod(clients, len(slots))
    summary = BookSummary(seed=seed, database=connection.vendor, now=now)
    with _SqliteBulkSettings(connection):
        for n, (country, k) in enumerate(slots):
            count = share + (1 if n < extra else 0)
            with transaction.atomic(using=connection.alias):
                entity, places, employers, admin = _build_entity(
                    actor=actor, country=country, index=k, code_prefix=code_prefix, client_count=count,
                    rng=rng, now=now,
                )
                if progress:
                    progress(summary.clients, clients, f"{entity.code}: {len(places)} branches, {len(employers)} employers")
                entity_book, write_seconds = _write_clients(
                    connection=connection, entity=entity, places=places, employers=employers, count=count,
                    rng=rng, now=now, batch_rows=batch_rows, progress=progress, done_before=summary.clients,
                    total=clients,
                )
            entity_book.user_ids = sorted({admin.pk, *entity_book.user_ids})
            summary.entities.append(entity_book)
            summary.clients += entity_book.client_count
            summary.accounts += entity_book.account_count
            summary.users += len(entity_book.user_ids)
            summary.employers += len(entity_book.employer_ids)
            summary.write_seconds += write_seconds
    for extension in BOOK_EXTENSIONS if extensions is None else extensions:
        with transaction.atomic(using=connection.alias):
            extension(connection, summary, rng)
    summary.seconds = time.perf_counter() - started
    entities = Entity.objects.using(connection.alias).in_bulk([b.entity_id for b in summary.entities])
    for entity_book in summary.entities:
        audit_record(
            action=AuditAction.DATA_GENERATED, actor=actor, entity=entities[entity_book.entity_id],
            subject=f"seed {seed}", after={"clients": entity_book.client_count, "accounts": entity_book.account_count,
                                           "users": len(entity_book.user_ids), "employers": len(entity_book.employer_ids)},
        )
    logger.info(
        "Generated book seed=%s: %s entities, %s clients, %s accounts, %s users, %s employers in %.1fs (%s)",
        seed, len(summary.entities), summary.clients, summary.accounts, summary.users, summary.employers,
        summary.seconds, summary.database,
    )
    return summary
