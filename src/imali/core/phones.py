"""Phone numbers: parsed with phonenumbers for the entity's country, stored as E.164."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneNumberType

from .countries import COUNTRY_FACTS, country_name
from .errors import field_error

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# phonenumbers' ZA metadata also accepts some 8-digit national numbers; SA numbers have 9.
_NATIONAL_LENGTH = {"ZA": 9}
# How people write a number: digits, with spaces, hyphens, dots or brackets between groups, and a
# "+" only in front. phonenumbers itself reads past letters, extensions ("ext 12", "x", ";ext=5")
# and trailing junk, so anything else is refused here before it can be stored as a valid number.
_WRITTEN_NUMBER = re.compile(r"\+?[0-9 ().-]+", re.ASCII)
_EXTENSION = re.compile(r"(?i)(?:;\s*ext\s*=|ext(?:ension)?\.?|x|#)\s*\d*\s*$")


def parse_phone(raw: str, *, country: str, field: str, mobile: bool = False) -> str:
    """Return the E.164 form of `raw`, read as a number of `country`, or raise naming `field`."""
    text = (raw or "").strip()
    if not text:
        raise field_error(field, "A phone number is required.", code="required")
    if _EXTENSION.search(text):
        raise field_error(field, f"'{text}' has an extension: give the number alone.", code="phone_extension")
    if not _WRITTEN_NUMBER.fullmatch(text):
        raise field_error(
            field, f"'{text}' is not a phone number: use digits, with spaces, hyphens or brackets and a leading +.",
            code="invalid_phone",
        )
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise field_error(field, f"'{text}' is not a phone number.", code="invalid_phone") from None
    region = phonenumbers.region_code_for_number(number)
    place = country_name(country)
    # The hint is built only for a refusal: every accepted number would pay for it (an example
    # lookup and two formattings, more than the parse itself), and some paths parse one per message.
    if region != country:
        found = f"a number in {_region_name(region)}, not in {place}" if region else f"not a number in {place}"
        raise field_error(field, f"'{text}' is {found}: give a number in {place}{_written_as(country, mobile=mobile)}.",
                          code="wrong_country")
    if not phonenumbers.is_valid_number(number):
        raise field_error(field, f"'{text}' is not a valid number in {place}: give one{_written_as(country, mobile=mobile)}.",
                          code="invalid_phone")
    expected = _NATIONAL_LENGTH.get(country)
    if expected and len(str(number.national_number)) != expected:
        raise field_error(
            field, f"'{text}' must have {expected} digits after the trunk 0.", code="invalid_phone"
        )
    if mobile and phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise field_error(field, f"'{text}' is not a cellphone number in {place}: give one{_written_as(country, mobile=mobile)}.",
                          code="not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _region_name(region: str) -> str:
    # Our five countries by their names; any other by its code ("a GB number"), as phonenumbers gives it.
    return country_name(region) if region in COUNTRY_FACTS else region


def _written_as(country: str, *, mobile: bool) -> str:
    """How a number of `country` is written, as a hint: " like 081 123 4567 or +264 81 123 4567"."""
    example = phonenumbers.example_number_for_type(country, PhoneNumberType.MOBILE if mobile else PhoneNumberType.FIXED_LINE)
    if example is None:
        return ""
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return f" like {national} or {international}"


def display_phone(e164: str) -> str:
    if not e164:
        return ""
    number = phonenumbers.parse(e164, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
