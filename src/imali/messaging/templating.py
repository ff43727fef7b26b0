"""Message templates with `{^Field Name^}` merge fields (DOMAIN §3). Pure: no database.

Rules, checked by `validate_template`: every field must be a known one; a message may not start
with a field; a field needs a space before it and a space after it (the end of the message
counts as the space after, so a message may end with a field). `render` fills the fields.

A *saved* template (`saved_template_problems`) obeys two rules more: a length bound per channel
(an SMS template at most six GSM-7 parts, 918 characters; an email body 5,000 characters), and
the OTP template must carry `{^OTP^}`, or the code would never reach the client. Free text typed
for one SMS gets `template_problems` too, so a typo such as `{^Nmae^}` is refused, not sent.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

MERGE_FIELDS: tuple[str, ...] = (
    "Client Name",
    "Client Surname",
    "Client Account Number",
    "Loan Amount",
    "Instalment Amount",
    "Next Date Due",
    "Next Amount Due",
    "Client Total Settlement Amount",
    "Client Total Outstanding Loan Amount",
    "Change",
    "Non-loan Debits",
    "Date Today",
    "Date Today Plus 7 Days",
    "Date Today Plus 30 Days",
    "Legal Entity Name",
    "Branch Name",
    "Branch Telephone",
    "OTP",
)
_KNOWN = frozenset(MERGE_FIELDS)

# A field's name holds no "^", "{" or "}": with ".*?" each "{^" scanned on to the text's end for a
# "^}", and two megabytes of "{^" took minutes (quadratic). A name with one of them was never a
# known field; such a text now reads as an unclosed field instead of an unknown one.
FIELD_RE = re.compile(r"\{\^([^^{}]*)\^\}")


class TemplateErrorCode(StrEnum):
    EMPTY = "template_empty"
    UNKNOWN_FIELD = "unknown_field"
    FIELD_AT_START = "field_at_start"
    NO_SPACE_BEFORE = "field_needs_space_before"
    NO_SPACE_AFTER = "field_needs_space_after"
    UNCLOSED_FIELD = "unclosed_field"
    MISSING_VALUE = "missing_value"
    TOO_LONG = "template_too_long"
    REQUIRED_FIELD_MISSING = "required_field_missing"


# Six GSM-7 parts of 153 characters: a longer SMS template would be billed as a surprise.
SMS_TEMPLATE_MAX_LENGTH = 918
# An email body is a few paragraphs; 5,000 characters leave room for that and refuse pasted documents.
EMAIL_TEMPLATE_MAX_LENGTH = 5000
TEMPLATE_MAX_LENGTH: dict[str, int] = {"sms": SMS_TEMPLATE_MAX_LENGTH, "email": EMAIL_TEMPLATE_MAX_LENGTH}
# Fields a saved template of a message type must contain (keyed by the message type's value).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {"otp": ("OTP",)}


@dataclass(frozen=True)
class TemplateProblem:
    code: TemplateErrorCode
    field: str
    message: str


class TemplateError(ValueError):
    def __init__(self, problems: list[TemplateProblem]):
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def fields_used(text: str) -> list[str]:
    return [m.group(1) for m in FIELD_RE.finditer(text)]


def template_problems(text: str, *, known: frozenset[str] | None = None) -> list[TemplateProblem]:
    known = _KNOWN if known is None else known
    problems: list[TemplateProblem] = []
    if not text.strip():
        return [TemplateProblem(TemplateErrorCode.EMPTY, "", "The message is empty.")]
    # Where the text proper starts: a field at or before it starts the message (one slice of the
    # text per field made 150,000 fields a 20-second check).
    start = len(text) - len(text.lstrip())
    for m in FIELD_RE.finditer(text):
        name = m.group(1)
        if name not in known:
            problems.append(TemplateProblem(TemplateErrorCode.UNKNOWN_FIELD, name, f"Unknown merge field {{^{name}^}}."))
        if m.start() <= start:
            problems.append(TemplateProblem(TemplateErrorCode.FIELD_AT_START, name, f"The message may not start with the field {{^{name}^}}."))
        elif text[m.start() - 1] != " ":
            problems.append(TemplateProblem(TemplateErrorCode.NO_SPACE_BEFORE, name, f"The field {{^{name}^}} needs a space before it."))
        if m.end() < len(text) and text[m.end()] != " ":
            problems.append(TemplateProblem(TemplateErrorCode.NO_SPACE_AFTER, name, f"The field {{^{name}^}} needs a space after it."))
    # A "{^" with no closing "^}" outside any complete field is a typing slip the reader must see.
    stripped = FIELD_RE.sub("", text)
    if "{^" in stripped or "^}" in stripped:
        problems.append(TemplateProblem(TemplateErrorCode.UNCLOSED_FIELD, "", "A merge field is not closed: write fields as {^Field Name^}."))
    return problems


def saved_template_problems(text: str, *, channel: str, message_type: str) -> list[TemplateProblem]:
    """Everything wrong with `text` as the saved template of `message_type` on `channel`: the
    field rules, the channel's length bound and the type's required fields."""
    problems = template_problems(text)
    limit = TEMPLATE_MAX_LENGTH[channel]
    if len(text) > limit:
        kind = "An SMS template (six SMS parts)" if channel == "sms" else "An email template"
        problems.append(TemplateProblem(TemplateErrorCode.TOO_LONG, "",
                                        f"{kind} may have at most {limit:,} characters; this one has {len(text):,}."))
    used = set(fields_used(text))
    for name in REQUIRED_FIELDS.get(message_type, ()):
        if name not in used:
            problems.append(TemplateProblem(TemplateErrorCode.REQUIRED_FIELD_MISSING, name,
                                            f"This template must contain {{^{name}^}}, where the code goes."))
    return problems


def validate_template(text: str) -> None:
    problems = template_problems(text)
    if problems:
        raise TemplateError(problems)


def render(text: str, values: Mapping[str, object], *, missing: str | None = None) -> str:
    """Fill every field from `values`. A field without a value raises, unless `missing` is given:
    then it is shown as `missing` formatted with the field name (previews use "[{}]")."""
    absent: list[str] = []

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name in values and values[name] is not None:
            return str(values[name])
        if missing is not None:
            return missing.format(name)
        absent.append(name)
        return ""

    out = FIELD_RE.sub(fill, text)
    if absent:
        raise TemplateError([
            TemplateProblem(TemplateErrorCode.MISSING_VALUE, name, f"No value for the field {{^{name}^}}.") for name in dict.fromkeys(absent)
        ])
    return out


class Compiled:
    """A template turned once into a `str.format` pattern over its fields, for rendering many
    messages fast: one C-level format call per message instead of a walk over the pieces."""

    __slots__ = ("fields", "_pattern", "_getter")

    def __init__(self, text: str):
        self.fields: tuple[str, ...] = tuple(dict.fromkeys(fields_used(text)))
        index = {name: i for i, name in enumerate(self.fields)}
        parts: list[str] = []
        pos = 0
        for m in FIELD_RE.finditer(text):
            parts.append(text[pos : m.start()].replace("{", "{{").replace("}", "}}"))
            parts.append(f"{{{index[m.group(1)]}}}")
            pos = m.end()
        parts.append(text[pos:].replace("{", "{{").replace("}", "}}"))
        self._pattern = "".join(parts)
        if not self.fields:
            self._getter = lambda values: ()
        elif len(self.fields) == 1:
            only = self.fields[0]
            self._getter = lambda values: (values[only],)
        else:
            self._getter = operator.itemgetter(*self.fields)

    def render(self, values: Mapping[str, object]) -> str:
        try:
            return self._pattern.format(*self._getter(values))
        except KeyError as exc:
            name = exc.args[0]
            raise TemplateError([TemplateProblem(TemplateErrorCode.MISSING_VALUE, name, f"No value for the field {{^{name}^}}.")]) from None
