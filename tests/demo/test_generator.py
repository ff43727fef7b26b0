"""The book generator writes valid, realistic, deterministic data, in bulk, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import phonenumbers
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from phonenumbers import PhoneNumberType
from stdnum.za import idnr, tin

from imali.clients.models import Client, ClientAccount
from imali.clients.services import CLIENT_EDITABLE_FIELDS, client_create
from imali.clients.validation import clean_client_fields
from imali.core.idnumbers import check_sa_id
from imali.core.phones import parse_phone
from imali.demo.generator import (
    CLIENT_FIELDS,
    generate_book,
    luhn_check_digit,
    sa_id_number,
    table_columns,
)
from imali.tenancy.models import Branch, Entity, User
from tests import factories

NOW = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
ZA_UNIVERSAL_BRANCH_CODES = {"632005", "250655", "051001", "198765", "470010"}
MOBILE = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
FIXED = {PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


@pytest.fixture
def operator_user(db):
    return factories.make_operator()


@pytest.fixture(scope="module")
def shared_book(django_db_setup, django_db_blocker):
    """A small book over all five countries, built once for the module inside a transaction that
    is rolled back at the end; each test runs in a savepoint inside it (the `db` fixture)."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield generate_book(clients=250, seed=11, actor=factories.make_operator(), now=NOW)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def book(shared_book, db):
    return shared_book


def _clients_of(entity_id: int) -> list[Client]:
    return list(Client.objects.filter(entity_id=entity_id).order_by("number"))


def _check_phone(e164: str, country: str, kinds: set) -> None:
    number = phonenumbers.parse(e164, None)
    assert phonenumbers.is_valid_number(number), e164
    assert phonenumbers.region_code_for_number(number) == country, e164
    assert phonenumbers.number_type(number) in kinds, e164
    assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164
    if country == "ZA":
        assert len(str(number.national_number)) == 9, e164


def test_sa_id_construction_matches_the_published_vector():
    # 7503305044089 is the valid vector of DOMAIN §9: 30 March 1975, sequence 5044, citizen.
    assert sa_id_number("750330", sum_luhn("750330"), 5044, 0) == "7503305044089"
    assert luhn_check_digit("750330504408") == "9"


def sum_luhn(yymmdd: str) -> int:
    from imali.demo.generator import _luhn_part

    return _luhn_part(yymmdd, 0)


def test_sa_clients_have_real_id_numbers_matching_birth_date_and_gender(book):
    za = next(e for e in book.entities if e.country == "ZA")
    clients = _clients_of(za.entity_id)
    assert len(clients) == 50
    for client in clients:
        assert client.id_type == "sa_id"
        assert idnr.is_valid(client.id_number), client.id_number
        assert check_sa_id(client.id_number, date_of_birth=client.date_of_birth, gender=client.gender) == {}
        assert idnr.get_birth_date(client.id_number) == client.date_of_birth
        assert (int(client.id_number[6:10]) >= 5000) == (client.gender == "M")
        assert client.id_number[11] == "8"
        if client.tax_number:
            assert tin.is_valid(client.tax_number), client.tax_number
    assert len({c.id_number for c in clients}) == len(clients)


def test_other_countries_use_national_ids(book):
    for entity_book in book.entities:
        if entity_book.country == "ZA":
            continue
        clients = _clients_of(entity_book.entity_id)
        assert {c.id_type for c in clients} == {"national_id"}
        assert len({c.id_number for c in clients}) == len(clients)
        if entity_book.country == "BW":
            # Omang: nine digits, the fifth 1 for men and 2 for women.
            assert all(re.fullmatch(r"\d{9}", c.id_number) for c in clients)
            assert all(c.id_number[4] == ("1" if c.gender == "M" else "2") for c in clients)
        if entity_book.country == "ZM":
            assert all(re.fullmatch(r"\d{6}/\d{2}/1", c.id_number) for c in clients)
        if entity_book.country in ("NA", "SZ"):
            assert all(c.id_number[:6] == c.date_of_birth.strftime("%y%m%d") for c in clients)


def test_phones_are_valid_numbers_of_the_entity_country(book):
    for entity_book in book.entities:
        country = entity_book.country
        clients = _clients_of(entity_book.entity_id)
        for client in clients:
            _check_phone(client.cellphone, country, MOBILE)
            assert parse_phone(client.cellphone, country=country, field="cellphone", mobile=True) == client.cellphone
            if client.home_phone:
                _check_phone(client.home_phone, country, FIXED)
            if client.work_phone:
                _check_phone(client.work_phone, country, FIXED)
        # One cellphone belongs to one borrower per entity (enrolment, DOMAIN §4).
        assert len({c.cellphone for c in clients}) == len(clients)
        for branch in Branch.objects.filter(entity_id=entity_book.entity_id):
            _check_phone(branch.telephone, country, FIXED)
        for user in User.objects.filter(pk__in=entity_book.user_ids):
            _check_phone(user.cellphone, country, MOBILE)


def test_every_generated_client_passes_the_client_field_rules(book):
    for entity_book in book.entities:
        for client in _clients_of(entity_book.entity_id):
            data = {name: getattr(client, name) for name in CLIENT_EDITABLE_FIELDS}
            cleaned = clean_client_fields(data, country=entity_book.country, today=NOW.date())
            assert cleaned["cellphone"] == client.cellphone
            assert client.full_names.split()[0] == client.name
            assert client.initials == "".join(p[0] for p in client.full_names.split())
            assert client.salary > 0
            if client.paypoint_id:
                assert client.paypoint.employer_id == client.employer_id
            assert client.branch.entity_id == entity_book.entity_id
            if client.salesperson_id:
                assert client.salesperson.entity_id == entity_book.entity_id
            assert client.created_by.entity_id == entity_book.entity_id
            assert client.created_at <= NOW


def test_client_numbers_are_sequential_and_the_entity_counter_advances(book, operator_user):
    assert book.clients == 250 and len(book.entities) == 5
    for entity_book in book.entities:
        clients = _clients_of(entity_book.entity_id)
        assert [c.number for c in clients] == list(range(1, 51))
        assert [c.pk for c in clients] == list(entity_book.client_ids)
        assert (entity_book.first_client_number, entity_book.last_client_number) == (1, 50)
        entity = Entity.objects.get(pk=entity_book.entity_id)
        assert entity.next_client_number == 51
        # Taken on in number order (the day never goes back as the number goes up).
        assert all(a.created_at.date() <= b.created_at.date() for a, b in zip(clients, clients[1:], strict=False))
    # The service hands out the next number, and the reserved ids do not collide with new rows.
    za = Entity.objects.get(pk=book.entities[0].entity_id)
    admin = User.objects.filter(entity=za, roles__name="Administrator").first()
    new = client_create(entity=za, actor=admin, data=factories.client_data(za, cellphone="0829990001"))
    assert new.number == 51
    assert new.pk > max(e.last_client_id for e in book.entities)


def test_generated_ids_start_after_existing_clients(operator_user):
    entity = factories.make_entity(country="ZA")
    existing = factories.make_client(entity=entity)
    summary = generate_book(clients=6, seed=5, actor=operator_user, countries=("NA",), now=NOW)
    book = summary.entities[0]
    assert book.first_client_id > existing.pk
    assert list(Client.objects.filter(entity_id=book.entity_id).values_list("pk", flat=True).order_by("pk")) == list(book.client_ids)
    assert Entity.objects.get(pk=book.entity_id).next_client_number == 7
    existing.refresh_from_db()
    assert existing.number == 1


def test_accounts_are_bank_accounts_with_universal_codes_or_wallets(book):
    assert ClientAccount.objects.count() == book.accounts
    for entity_book in book.entities:
        accounts = list(ClientAccount.objects.filter(client__entity_id=entity_book.entity_id).select_related("client"))
        assert len(accounts) == entity_book.account_count
        assert any(a.kind == "bank" for a in accounts)
        for account in accounts:
            if account.kind == "bank":
                assert re.fullmatch(r"\d{6}", account.branch_code)
                assert re.fullmatch(r"\d{9,13}", account.account_number)
                assert account.bank_name and account.account_type in ("cheque", "savings", "transmission")
                if entity_book.country == "ZA":
                    assert account.branch_code in ZA_UNIVERSAL_BRANCH_CODES
            else:
                assert account.kind == "wallet" and account.wallet_provider
                assert account.wallet_number == account.client.cellphone


def test_structure_has_roles_branches_staff_and_employers(book):
    for entity_book in book.entities:
        entity = Entity.objects.get(pk=entity_book.entity_id)
        assert set(entity.roles.values_list("name", flat=True)) >= {"Administrator", "Branch manager", "Loan officer", "Viewer"}
        assert entity.regions.exists()
        assert entity.branches.count() == len(entity_book.branch_ids) >= 3
        staff = User.objects.filter(pk__in=entity_book.user_ids)
        assert all(u.entity_id == entity.pk and u.home_branch.entity_id == entity.pk for u in staff)
        assert all(u.roles.exists() and not u.has_usable_password() for u in staff)
        employers = entity.employers.all()
        assert employers.count() == len(entity_book.employer_ids) > 10
        assert all(e.classification and e.economic_sector and e.paypoints.exists() for e in employers)


def test_same_seed_gives_the_same_book_and_another_seed_does_not(operator_user):
    def content(summary):
        rows = []
        for entity_book in summary.entities:
            for c in Client.objects.filter(entity_id=entity_book.entity_id).select_related("branch", "employer", "paypoint").order_by("number"):
                values = [getattr(c, f) for f in CLIENT_FIELDS if not f.endswith("_id") and f != "id"]
                rows.append((entity_book.country, c.branch.code, getattr(c.employer, "name", None),
                             getattr(c.paypoint, "number", None), *values))
        return rows

    first = generate_book(clients=30, seed=99, actor=operator_user, countries=("ZA", "ZM"), now=NOW)
    again = generate_book(clients=30, seed=99, actor=operator_user, countries=("ZA", "ZM"), now=NOW)
    other = generate_book(clients=30, seed=100, actor=operator_user, countries=("ZA", "ZM"), now=NOW)
    assert {e.code for e in first.entities}.isdisjoint({e.code for e in again.entities})
    assert content(first) == content(again)
    assert content(first) != content(other)


def test_extensions_run_after_the_clients_with_the_summary(operator_user):
    seen = []

    def count_clients(conn, summary, rng):
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {Client._meta.db_table} WHERE id BETWEEN %s AND %s",
                           [summary.entities[0].first_client_id, summary.entities[0].last_client_id])
            seen.append((cursor.fetchone()[0], summary.clients, rng.random()))

    summary = generate_book(clients=12, seed=3, actor=operator_user, countries=("SZ", "BW"), now=NOW,
                            extensions=[count_clients])
    assert seen[0][:2] == (6, 12)
    assert summary.entities[0].client_count == 6


def test_an_extension_can_bulk_write_rows_per_client_with_the_public_helpers(operator_user):
    """What the loan book will do: one row per generated client, through reserve_ids/write_rows."""
    from imali.clients.models import ClientNote
    from imali.demo.generator import datetime_text, reserve_ids, write_rows

    def add_notes(conn, summary, rng):
        client_ids = [cid for book in summary.entities for cid in book.client_ids]
        table, columns, extras = table_columns(ClientNote, ("id", "client_id", "text", "created_at"), conn)
        first = reserve_ids(conn, ClientNote, len(client_ids))
        stamp = datetime_text(conn, summary.now)
        write_rows(conn, table, columns, [
            (first + n, cid, f"Welcome call {rng.randrange(1, 4)}", stamp, *extras) for n, cid in enumerate(client_ids)
        ])

    summary = generate_book(clients=9, seed=21, actor=operator_user, countries=("ZM", "NA", "SZ"), now=NOW,
                            extensions=[add_notes])
    notes = ClientNote.objects.filter(client__entity_id__in=[b.entity_id for b in summary.entities])
    assert notes.count() == 9
    assert sorted(notes.values_list("client_id", flat=True)) == sorted(
        cid for book in summary.entities for cid in book.client_ids)
    assert all(n.created_at == NOW and n.text.startswith("Welcome call") for n in notes)


def test_only_the_operator_generates_and_bad_arguments_are_refused(operator_user):
    entity = factories.make_entity(country="ZA")
    staff = factories.make_admin(entity=entity)
    with pytest.raises(PermissionError):
        generate_book(clients=1, seed=1, actor=staff)
    with pytest.raises(ValueError, match="Countries"):
        generate_book(clients=1, seed=1, actor=operator_user, countries=("KE",))


def test_columns_come_from_the_model_and_unknown_fields_fail_loudly(db):
    table, columns, extras = table_columns(Client, CLIENT_FIELDS)
    assert table == Client._meta.db_table
    column_of = {f.attname: f.column for f in Client._meta.concrete_fields}
    assert columns[: len(CLIENT_FIELDS)] == [column_of[name] for name in CLIENT_FIELDS]
    assert len(columns) == len(CLIENT_FIELDS) + len(extras)
    with pytest.raises(ImproperlyConfigured, match="no field"):
        table_columns(Client, ("id", "shoe_size"))


def test_each_run_leaves_one_audit_entry_per_entity_with_its_counts(operator_user):
    from imali.core.models import AuditAction, AuditEntry

    summary = generate_book(clients=5, seed=8, actor=operator_user, countries=("BW",), now=NOW)
    book = summary.entities[0]
    entry = AuditEntry.objects.get(action=AuditAction.DATA_GENERATED, entity_id=book.entity_id)
    assert entry.actor == operator_user
    assert entry.after["clients"] == 5 and entry.after["accounts"] == book.account_count
