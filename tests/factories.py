"""Test data built through the real services, so tests exercise the same rules as the product."""

from __future__ import annotations

import datetime as dt
import itertools

from imali.clients.services import client_create, employer_create
from imali.tenancy.models import Branch, Entity, Role, User
from imali.tenancy.rights import Right
from imali.tenancy.services import rights_permissions

_seq = itertools.count(1)

# Valid SA ID numbers (Luhn-correct) with their birth dates and genders.
SA_IDS = [
    ("7503305044089", dt.date(1975, 3, 30), "M"),
    ("8001015009087", dt.date(1980, 1, 1), "M"),
    ("9202204720083", dt.date(1992, 2, 20), "F"),
]

CELLPHONES = {"ZA": "0821234567", "NA": "0811234567", "BW": "71234567", "SZ": "76123456", "ZM": "0971234567"}


def make_operator(username: str | None = None) -> User:
    user = User(username=username or f"operator{next(_seq)}", is_operator=True, first_name="Platform", last_name="Operator")
    user.set_password("operator-pass-123")
    user.save()
    return user


def make_entity(*, country: str = "ZA", code: str | None = None) -> Entity:
    from imali.tenancy.services import entity_create

    n = next(_seq)
    code = code or f"lender{n}"
    operator = User.objects.filter(is_operator=True).first() or make_operator()
    entity = entity_create(actor=operator, data={"name": f"Lender {code}", "code": code, "country": country,
                                                  "modules": ["maxsms", "maxmail", "loan_otp"]})
    Branch.objects.create(entity=entity, code="HO", name="Head Office", telephone="")
    return entity


def make_user(*, entity: Entity, rights: list[Right] | None = None, username: str | None = None,
              password: str = "correct-horse-battery") -> User:
    n = next(_seq)
    user = User(username=username or f"user{n}", entity=entity, home_branch=entity.branches.first(),
                cellphone="+27821234567" if entity.country == "ZA" else "", first_name="Test", last_name=f"User{n}")
    user.set_password(password)
    user.save()
    if rights:
        role = Role.objects.create(entity=entity, name=f"role{n}")
        role.rights.set(rights_permissions(rights))
        user.roles.add(role)
    return user


def make_admin(*, entity: Entity, **kwargs) -> User:
    return make_user(entity=entity, rights=list(Right), **kwargs)


def client_data(entity: Entity, **overrides) -> dict:
    id_number, dob, gender = SA_IDS[0]
    data = {
        "branch": entity.branches.first(),
        "title": "Mr",
        "full_names": "Thabo Johannes",
        "surname": "Mokoena",
        "id_type": "sa_id" if entity.country == "ZA" else "national_id",
        "id_number": id_number if entity.country == "ZA" else f"N{next(_seq):08d}",
        "date_of_birth": dob,
        "gender": gender,
        "cellphone": CELLPHONES[entity.country],
    }
    data.update(overrides)
    return data


def make_client(*, entity: Entity, actor: User | None = None, **overrides):
    return client_create(entity=entity, actor=actor, data=client_data(entity, **overrides))


def make_employer(*, entity: Entity, actor: User | None = None, name: str | None = None):
    return employer_create(entity=entity, actor=actor, data={
        "name": name or f"Employer {next(_seq)}", "classification": "government", "economic_sector": "government"})
