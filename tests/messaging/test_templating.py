import pytest

from imali.messaging.templating import (
    Compiled,
    TemplateError,
    TemplateErrorCode,
    render,
    template_problems,
    validate_template,
)


def codes(text):
    return [(p.code, p.field) for p in template_problems(text)]


def test_valid_template_renders():
    text = "Dear {^Client Name^} your instalment of {^Instalment Amount^} is due on {^Next Date Due^}"
    validate_template(text)
    out = render(text, {"Client Name": "Thabo", "Instalment Amount": "R500.00", "Next Date Due": "2026-12-01"})
    assert out == "Dear Thabo your instalment of R500.00 is due on 2026-12-01"


def test_unknown_field_is_named():
    with pytest.raises(TemplateError) as exc:
        validate_template("Dear {^Client Nmae^} hello")
    assert exc.value.problems[0].code is TemplateErrorCode.UNKNOWN_FIELD
    assert exc.value.problems[0].field == "Client Nmae"
    assert "Client Nmae" in str(exc.value)


def test_field_at_start_is_refused():
    assert codes("{^Client Name^} pay now") == [(TemplateErrorCode.FIELD_AT_START, "Client Name")]
    assert codes("  {^Client Name^} pay now") == [(TemplateErrorCode.FIELD_AT_START, "Client Name")]


def test_fields_need_surrounding_spaces():
    assert codes("Dear{^Client Name^} hi") == [(TemplateErrorCode.NO_SPACE_BEFORE, "Client Name")]
    assert codes("Dear {^Client Name^}, hi") == [(TemplateErrorCode.NO_SPACE_AFTER, "Client Name")]
    assert codes("Call {^Branch Telephone^}") == []


def test_unclosed_field_and_empty():
    assert codes("Dear {^Client Name please") == [(TemplateErrorCode.UNCLOSED_FIELD, "")]
    assert codes("   ") == [(TemplateErrorCode.EMPTY, "")]


def test_render_missing_value_raises_or_shows_marker():
    with pytest.raises(TemplateError) as exc:
        render("Hi {^Client Name^} owe {^Loan Amount^}", {"Client Name": "A"})
    assert exc.value.problems[0].field == "Loan Amount"
    assert render("Hi {^Loan Amount^}", {}, missing="[{}]") == "Hi [Loan Amount]"


def test_compiled_matches_render():
    text = "Hi {^Client Name^} from {^Legal Entity Name^} ok"
    values = {"Client Name": "Naledi", "Legal Entity Name": "Acme"}
    assert Compiled(text).render(values) == render(text, values)
    with pytest.raises(TemplateError):
        Compiled(text).render({"Client Name": "x"})


def test_compiled_keeps_literal_braces_and_repeats():
    text = "Code {x} and {{y}} for {^Client Name^} and again {^Client Name^} }"
    assert Compiled(text).render({"Client Name": "Sipho"}) == render(text, {"Client Name": "Sipho"}) == \
        "Code {x} and {{y}} for Sipho and again Sipho }"
    assert Compiled("No fields at all").render({}) == "No fields at all"
