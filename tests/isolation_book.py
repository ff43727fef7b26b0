"""A book of objects of every kind for the *other* entity in the isolation test.

It builds through the real services (and the demo generator's extensions, once a domain adds
some), so a new model is covered by adding it to the product's data paths, not to the test."""

from __future__ import annotations

from imali.clients.services import client_account_add, client_note_add, paypoint_create
from imali.tenancy.models import Entity, Region, Role
from tests import factories

MARKER = "Zqxisolation"  # appears in the other entity's data and must never show to the first


def build_book(entity: Entity, *, marker: str = MARKER, cellphone: str | None = None) -> dict:
    """Objects of every kind for `entity`, their names carrying `marker`; `cellphone`: the client's,
    when two books of one country must not share the factory's number."""
    MARKER = marker  # noqa: N806 - the same name as the module default it overrides
    admin = factories.make_admin(entity=entity, username=f"{MARKER.lower()}admin")
    Region.objects.create(entity=entity, name=f"{MARKER} region")
    Role.objects.create(entity=entity, name=f"{MARKER} role")
    employer = factories.make_employer(entity=entity, actor=admin, name=f"{MARKER} Employer")
    paypoint_create(employer=employer, actor=admin, number="PP1", name=f"{MARKER} paypoint")
    client = factories.make_client(entity=entity, actor=admin, surname=MARKER, employer=employer,
                                   **({"cellphone": cellphone} if cellphone else {}))
    client_account_add(client=client, actor=admin, data={
        "kind": "bank", "bank_name": "FNB", "branch_code": "250655", "account_number": "62000000001",
        "account_type": "cheque"})
    client_note_add(client=client, actor=admin, text=f"{MARKER} note")
    book = {"admin": admin, "client": client, "employer": employer}
    for extend in _extensions():
        book.update(extend(entity=entity, actor=admin, client=client) or {})
    return book


def _extensions():
    """Domains that own more models contribute a builder `isolation_objects(entity=, actor=, client=)`."""
    import importlib

    from django.apps import apps

    builders = []
    for config in apps.get_app_configs():
        if not config.name.startswith("imali."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.testing")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.testing":
                raise
            continue
        builder = getattr(module, "isolation_objects", None)
        if builder is not None:
            builders.append(builder)
    return builders
