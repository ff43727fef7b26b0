"""Form fields shared by every screen's forms (web views and the domain apps' filter forms)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import BadRequest, ValidationError

ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


def ascii_integer(value) -> int | None:
    """`value` as an int when it is an int (not a bool) or a text of ASCII digits with an optional
    minus sign; None otherwise. Python's int() also reads "١٢" (Arabic-Indic) and "１２"
    (fullwidth) as 12, and Django's and DRF's integer fields drop a trailing ".0": a whole number
    typed so is refused, not guessed (the API's and the screens' rule)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ASCII_INTEGER.fullmatch(value):
        return int(value)
    return None


class StrictIntegerFormField(forms.IntegerField):
    """A whole number typed as ASCII digits (`ascii_integer`), refused with the field's own error
    otherwise, as the API does (api.serializers.fields.StrictIntegerField). Bounds as
    IntegerField's (min_value, max_value)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        # Typed into a box: spaces around the digits are the browser's, not the person's.
        number = ascii_integer(value.strip() if isinstance(value, str) else value)
        if number is None:
            raise ValidationError("Enter a whole number using the digits 0-9.", code="invalid")
        return number


def strict_formfield(db_field, **kwargs):
    """The form field of a model field, with StrictIntegerFormField for every integer column and
    the strict model choice fields for every foreign key and many-to-many column: the
    `formfield_callback` of the screens' model forms and fields_for_model calls."""
    from django.db import models

    if isinstance(db_field, models.IntegerField) and not isinstance(db_field, models.AutoField):
        kwargs.setdefault("form_class", StrictIntegerFormField)
    elif isinstance(db_field, models.ManyToManyField):
        kwargs.setdefault("form_class", StrictModelMultipleChoiceField)
    elif isinstance(db_field, models.ForeignKey):
        kwargs.setdefault("form_class", StrictModelChoiceField)
    return db_field.formfield(**kwargs)


def _integer_keyed(queryset, to_field_name) -> bool:
    """Whether the choices of a model choice field are picked by a whole number (the primary key
    or an integer column), which must then be typed as ASCII digits."""
    from django.db import models

    meta = queryset.model._meta
    field = meta.get_field(to_field_name) if to_field_name else meta.pk
    while field.is_relation:  # a one-to-one primary key: the key of the row it points at
        field = field.target_field
    return isinstance(field, models.IntegerField)


def _strict_choice_key(field, value) -> None:
    """Refuse an id that is not `ascii_integer` with the field's own "Select a valid choice"
    error: int() (what the ORM does with a filter value) reads '١٢' and '１２' as 12."""
    if isinstance(value, field.queryset.model) or not _integer_keyed(field.queryset, field.to_field_name):
        return
    if ascii_integer(value) is None:
        raise ValidationError(field.error_messages["invalid_choice"], code="invalid_choice", params={"value": value})


class StrictModelChoiceField(forms.ModelChoiceField):
    """A ModelChoiceField whose id is read by the screens' rule (`ascii_integer`): '١٢', '１２',
    '12.0' or ' 12' are "Select a valid choice", never the row with id 12."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        _strict_choice_key(self, value)
        return super().to_python(value)


class StrictModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """ModelMultipleChoiceField with each id read as StrictModelChoiceField reads one."""

    def _check_values(self, value):
        for pk in value:
            _strict_choice_key(self, pk)
        return super()._check_values(value)


class BadParameter(BadRequest):
    """A parameter of a screen's request (query or POSTed field outside a form) that is not what
    the page sends: the web answers 400 naming it (`imali.web.errors.bad_request`)."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(f"The parameter '{name}' {message}")


MAX_ID = 2**63 - 1


def ascii_id(value) -> int | None:
    """`value` read by `ascii_integer` as a row id (1 to MAX_ID, what the databases hold), or None."""
    number = ascii_integer(value)
    return number if number is not None and 0 < number <= MAX_ID else None


def request_id(params, name: str, *, required: bool = False) -> int | None:
    """The id in `params[name]` (request.GET or request.POST) read by `ascii_integer`: a positive
    whole number in ASCII digits. Missing or blank: None (BadParameter when required); anything
    else ('١٢', '１２', '12.0', '-1'): BadParameter naming the parameter."""
    raw = params.get(name, "")
    if raw == "":
        if required:
            raise BadParameter(name, "is required.")
        return None
    number = ascii_id(raw)
    if number is None:
        raise BadParameter(name, "must be an id: a whole number in the digits 0-9.")
    return number


def request_ids(params, name: str, *, limit: int | None = None) -> list[int]:
    """Every id given as `name` (?name=1&name=2, or a POSTed list of ticked rows), each read as
    `request_id` reads one; more than `limit` of them is BadParameter too. Order kept, repeats
    dropped."""
    values = params.getlist(name)
    if limit is not None and len(values) > limit:
        raise BadParameter(name, f"may name at most {limit} ids.")
    ids = [ascii_id(raw) for raw in values]
    if None in ids:
        raise BadParameter(name, "must be ids: whole numbers in the digits 0-9.")
    return list(dict.fromkeys(ids))
