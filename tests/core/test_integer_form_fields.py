"""Whole numbers typed into the screens read as the API reads them (core.forms.StrictIntegerFormField):
ASCII digits only. Django's IntegerField read "١٢" and "１２" as 12 and "12.0" as 12; its
ModelChoiceField and ModelMultipleChoiceField picked the row with id 12 for "١٢" or "１２" (the ORM
int()s the value), so every id chosen on a screen goes through StrictModelChoiceField too."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil

import pytest
from django import forms

import imali
from imali.core.forms import (
    StrictIntegerFormField,
    StrictModelChoiceField,
    StrictModelMultipleChoiceField,
    strict_formfield,
)
from imali.tenancy.models import Branch, Role


@pytest.mark.parametrize("value", ["١٢", "１２", "12.0", "1e1", "0x0c", "12,0", "twelve", "- 12"])
def test_a_whole_number_in_other_digits_or_shapes_is_an_error_naming_the_field(value):
    form = forms.Form(data={"n": value})
    form.fields["n"] = StrictIntegerFormField(min_value=0)
    assert not form.is_valid()
    assert form.errors["n"] == ["Enter a whole number using the digits 0-9."]


@pytest.mark.parametrize(("value", "read"), [("12", 12), (" 12 ", 12), ("-3", -3), ("", None)])
def test_ascii_digits_are_read(value, read):
    form = forms.Form(data={"n": value})
    form.fields["n"] = StrictIntegerFormField(required=False)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["n"] == read


def test_bounds_still_apply():
    form = forms.Form(data={"n": "11"})
    form.fields["n"] = StrictIntegerFormField(max_value=10)
    assert not form.is_valid() and "n" in form.errors


def _forms():
    for module in pkgutil.walk_packages(imali.__path__, "imali."):
        if ".migrations" in module.name or ".peers" in module.name or module.name.endswith(("settings", "wsgi", "asgi")):
            continue
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if isinstance(value, type) and issubclass(value, forms.BaseForm) and value.__module__ == module.name:
                yield value


def test_no_screen_form_declares_a_lax_integer_field():
    lax = [f"{form.__module__}.{form.__name__}.{name}" for form in _forms()
           for name, field in form.base_fields.items() if type(field) is forms.IntegerField]
    assert lax == []


def test_no_screen_form_declares_a_lax_model_choice_field():
    """Declared fields and model forms' columns: every model choice field reads ids strictly."""
    lax = [f"{form.__module__}.{form.__name__}.{name}" for form in _forms()
           for name, field in form.base_fields.items()
           if isinstance(field, forms.ModelChoiceField)
           and not isinstance(field, (StrictModelChoiceField, StrictModelMultipleChoiceField))]
    assert lax == []


def _sources():
    root = pathlib.Path(imali.__path__[0])
    for path in sorted(root.rglob("*.py")):
        if "migrations" not in path.parts and "peers" not in path.parts and path != root / "core" / "forms.py":
            yield path, ast.parse(path.read_text(), filename=str(path))


def test_fields_made_at_run_time_are_strict_too():
    """Fields a form adds in __init__ or a form class built by type() are not in base_fields: no
    module but core.forms names Django's lax model choice fields, and every fields_for_model call
    passes strict_formfield (integers and foreign keys alike)."""
    lax, unstrict = [], []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("ModelChoiceField", "ModelMultipleChoiceField"):
                lax.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Name) and node.id in ("ModelChoiceField", "ModelMultipleChoiceField"):
                lax.append(f"{path.name}:{node.lineno}")
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "fields_for_model"
                    and not any(k.arg == "formfield_callback" for k in node.keywords)):
                unstrict.append(f"{path.name}:{node.lineno}")
    assert (lax, unstrict) == ([], [])


OTHER_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _shapes(pk: int) -> list[str]:
    return [str(pk).translate(OTHER_DIGITS), str(pk).translate(FULLWIDTH), f"{pk}.0", f" {pk}", f"+{pk}", f"{pk}\n"]


@pytest.mark.django_db
def test_a_model_choice_in_other_digits_is_not_a_valid_choice(entity):
    branch = Branch.objects.filter(entity=entity).first()
    for shape in _shapes(branch.pk):
        form = forms.Form(data={"b": shape})
        form.fields["b"] = StrictModelChoiceField(queryset=Branch.objects.filter(entity=entity))
        assert not form.is_valid(), shape
        assert form.errors["b"] == ["Select a valid choice. That choice is not one of the available choices."]
    form = forms.Form(data={"b": str(branch.pk)})
    form.fields["b"] = StrictModelChoiceField(queryset=Branch.objects.filter(entity=entity))
    assert form.is_valid() and form.cleaned_data["b"] == branch


@pytest.mark.django_db
def test_a_model_multiple_choice_in_other_digits_is_not_a_valid_choice(entity):
    roles = list(Role.objects.filter(entity=entity)[:2])
    for shape in _shapes(roles[0].pk):
        form = forms.Form(data={"r": [str(roles[1].pk), shape]})
        form.fields["r"] = StrictModelMultipleChoiceField(queryset=Role.objects.filter(entity=entity))
        assert not form.is_valid(), shape
        assert form.errors["r"][0].startswith("Select a valid choice."), form.errors
    form = forms.Form(data={"r": [str(r.pk) for r in roles]})
    form.fields["r"] = StrictModelMultipleChoiceField(queryset=Role.objects.filter(entity=entity))
    assert form.is_valid() and set(form.cleaned_data["r"]) == set(roles)


def test_model_columns_get_the_strict_fields():
    from imali.clients.models import Client
    from imali.tenancy.models import User

    assert type(strict_formfield(Client._meta.get_field("branch"))) is StrictModelChoiceField
    assert type(strict_formfield(User._meta.get_field("roles"))) is StrictModelMultipleChoiceField


@pytest.mark.django_db
def test_a_screen_filter_refuses_a_branch_in_other_digits(entity):
    """The marketing filter (a real screen form): '١' for branch 1 was read as branch 1."""
    from imali.marketing.filters import DataSetFilterForm

    branch = Branch.objects.filter(entity=entity).first()
    form = DataSetFilterForm(data={"branch": str(branch.pk).translate(OTHER_DIGITS), "overdues": "include"}, entity=entity)
    assert not form.is_valid() and form.errors["branch"][0].startswith("Select a valid choice.")
