"""Whole numbers typed into the screens read as the API reads them (core.forms.StrictIntegerFormField):
ASCII digits only. Django's IntegerField read "١٢" and "１２" as 12 and "12.0" as 12."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from django import forms

import imali
from imali.core.forms import StrictIntegerFormField


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
