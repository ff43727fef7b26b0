"""Identity numbers. SA ID numbers are checked with python-stdnum and against the person."""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import models
from stdnum import exceptions as stdnum_errors
from stdnum.za import idnr


class IdType(models.TextChoices):
    SA_ID = "sa_id", "South African ID"
    NATIONAL_ID = "national_id", "National ID"
    PASSPORT = "passport", "Passport"


class Gender(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"


def check_sa_id(
    number: str, *, date_of_birth: dt.date | None, gender: str | None
) -> dict[str, list[ValidationError]]:
    """Return field errors for an SA ID number read against the given birth date and gender."""
    errors: dict[str, list[ValidationError]] = {}
    try:
        compact = idnr.validate(number)
    except stdnum_errors.InvalidChecksum:
        errors["id_number"] = [ValidationError("ID number checksum is wrong.", code="id_checksum")]
        return errors
    except stdnum_errors.InvalidComponent:
        errors["id_number"] = [ValidationError("ID number does not hold a real date of birth.", code="id_date")]
        return errors
    except stdnum_errors.ValidationError:
        errors["id_number"] = [ValidationError("ID number must be 13 digits.", code="id_format")]
        return errors
    born = idnr.get_birth_date(compact)
    if date_of_birth is not None and (born.month, born.day, born.year % 100) != (
        date_of_birth.month,
        date_of_birth.day,
        date_of_birth.year % 100,
    ):
        errors["date_of_birth"] = [
            ValidationError(
                f"Date of birth {date_of_birth:%Y-%m-%d} does not match the ID number ({compact[:6]}).",
                code="id_mismatch",
            )
        ]
    id_gender = Gender.MALE if idnr.get_gender(compact) == "M" else Gender.FEMALE
    if gender and gender != id_gender:
        errors["gender"] = [
            ValidationError(
                f"Gender does not match the ID number (it says {id_gender.label.lower()}).",
                code="id_mismatch",
            )
        ]
    return errors


def sa_id_facts(number: str) -> tuple[dt.date, str]:
    """Birth date and gender read from a valid SA ID number."""
    compact = idnr.compact(number)
    gender = Gender.MALE if idnr.get_gender(compact) == "M" else Gender.FEMALE
    return idnr.get_birth_date(compact), gender
