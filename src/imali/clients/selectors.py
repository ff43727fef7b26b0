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
        conditions |= Q(id_number=compact.upper())
        words = text.upper().split()
        surname_q = Q(surname_upper__startswith=words[-1])
        if len(words) > 1:
            surname_q &= Q(name_upper__startswith=words[0]) | Q(full_names_upper__startswith=words[0])
        conditions |= surname_q
        conditions |= Q(surname_upper__startswith=words[0]) if len(words) == 1 else Q()
    return (
        base.annotate(surname_upper=Upper("surname"), name_upper=Upper("name"), full_names_upper=Upper("full_names"))
        .filter(conditions)
        .order_by("surname", "name", "number")[:limit]
    )


def client_get(*, entity, pk: int) -> Client:
    return Client.objects.select_related("branch", "employer", "paypoint", "salesperson").get(entity=entity, pk=pk)


def employer_list(*, entity) -> QuerySet[Employer]:
    return Employer.objects.filter(entity=entity).prefetch_related("paypoints")
