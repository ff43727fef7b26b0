"""Reads of clients and employers. Every selector takes the entity it reads inside."""

from __future__ import annotations

import contextlib
import re

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.db.models.functions import Upper

from imali.core.phones import parse_phone

from .models import Client, Employer

_DIGITS = re.compile(r"^\+?[\d ]+$")


# A name typed with more words than this is matched on its first and last words' split points only.
_NAME_WORDS = 4


def _names_q(names: list[str]) -> Q:
    joined = " ".join(names)
    return Q(full_names_upper__startswith=joined) | Q(name_upper__startswith=joined) | Q(name_upper__startswith=names[0])


def _name_condition(text: str) -> Q:
    """A name as the client list shows it ("Surname, Name"), or as said ("Name Surname"), or a
    surname alone; either order without a comma, since both are typed."""
    if "," in text:
        surname, _, names = (part.strip() for part in text.partition(","))
        condition = Q(surname_upper__startswith=" ".join(surname.split()))
        return condition & _names_q(names.split()) if names else condition
    words = text.split()[:_NAME_WORDS]
    if len(words) == 1:
        return Q(surname_upper__startswith=words[0])
    condition = Q()
    for k in range(1, len(words)):
        first, rest = words[:k], words[k:]
        condition |= Q(surname_upper__startswith=" ".join(rest)) & _names_q(first)
        condition |= Q(surname_upper__startswith=" ".join(first)) & _names_q(rest)
    return condition


def client_search(*, entity, query: str, limit: int = 50) -> QuerySet[Client]:
    """Find clients by number, ID number, name or cellphone. Each branch of the search is indexed."""
    base = Client.objects.filter(entity=entity).select_related("branch")
    text = " ".join((query or "").split())
    if not text:
        return base.order_by("-id")[:limit]
    compact = text.replace(" ", "")
    conditions = Q()
    if _DIGITS.match(text):
        if compact.isdigit() and len(compact) <= 12:
            conditions |= Q(number=int(compact))
        conditions |= Q(id_number=compact)
        with contextlib.suppress(ValidationError):  # not a phone number: the other branches still apply
            conditions |= Q(cellphone=parse_phone(compact, country=entity.country, field="q"))
    else:
        conditions |= Q(id_number=compact.upper()) | _name_condition(text.upper())
    return (
        base.annotate(surname_upper=Upper("surname"), name_upper=Upper("name"), full_names_upper=Upper("full_names"))
        .filter(conditions)
        .order_by("surname", "name", "number")[:limit]
    )


def client_get(*, entity, pk: int) -> Client:
    return Client.objects.select_related("branch", "employer", "paypoint", "salesperson").get(entity=entity, pk=pk)


def employer_list(*, entity) -> QuerySet[Employer]:
    return Employer.objects.filter(entity=entity).prefetch_related("paypoints")
