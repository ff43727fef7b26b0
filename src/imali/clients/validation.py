"""Rules for a client's fields that need no database: IDs, phones, ranges. Pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from imali.core.idnumbers import IdType, check_sa_id
from imali.core.money import parse_amount
from imali.core.phones import parse_phone

from .models import (
    AppointmentType,
    Gender,
    PaymentFrequency,
    PaymentMoveDirection,
    Title,
)

PHONE_FIELDS = {"cellphone": True, "home_phone": False, "work_phone": False}
REQUIRED_FIELDS = ("full_names", "surname", "id_number", "id_type", "gender", "date_of_birth")
# Fields that take one of a fixed set: a value outside it is refused here, by name, instead of
# reaching the database (PostgreSQL refuses an over-long one with a server error, SQLite stores it).
CHOICE_FIELDS = {"title": Title, "id_type": IdType, "gender": Gender, "payment_frequency": PaymentFrequency,
                 "payment_move_direction": PaymentMoveDirection, "appointment_type": AppointmentType}


# Free-text columns (TEXT in the database, so unbounded there): a sane ceiling, so a 2 MB address
# from the API is refused by name rather than stored, copied into the audit log and every export.
ADDRESS_MAX_LENGTH = 500
TEXT_LIMITS = {"physical_address": ADDRESS_MAX_LENGTH, "postal_address": ADDRESS_MAX_LENGTH, "notes": 4000}


def text_too_long(errors: dict, data: dict[str, Any], limits: dict[str, int]) -> None:
    for field, limit in limits.items():
        value = data.get(field)
        if isinstance(value, str) and len(value) > limit:
            _add(errors, field, f"At most {limit:,} characters (this has {len(value):,}).", "too_long")


def _add(errors: dict, field: str, message: str, code: str) -> None:
    errors.setdefault(field, []).append(ValidationError(message, code=code))


def clean_client_fields(data: dict[str, Any], *, country: str, today: dt.date | None = None) -> dict[str, Any]:
    """Return `data` normalised (E.164 phones, compact ID) or raise one error naming every bad field."""
    today = today or dt.date.today()
    cleaned = dict(data)
    errors: dict[str, list[ValidationError]] = {}

    for field in REQUIRED_FIELDS:
        if cleaned.get(field) in (None, ""):
            _add(errors, field, "This field is required.", "required")
    for field in ("full_names", "surname", "name", "initials"):
        if isinstance(cleaned.get(field), str):
            cleaned[field] = " ".join(cleaned[field].split())
    if not cleaned.get("name") and cleaned.get("full_names"):
        cleaned["name"] = cleaned["full_names"].split()[0]
    if not cleaned.get("initials") and cleaned.get("full_names"):
        cleaned["initials"] = "".join(p[0].upper() for p in cleaned["full_names"].split())[:10]

    # loans builds on clients: read here, when checking
    from imali.loans.models import PaybackType, payback_type_refusal

    for field, choices in {**CHOICE_FIELDS, "payback_type": PaybackType}.items():
        value = cleaned.get(field)
        if value not in (None, "") and value not in choices.values:
            allowed = ", ".join(f"{v} ({label})" for v, label in choices.choices)
            _add(errors, field, f"'{value}' is not one of {allowed}.", "invalid_choice")
    if refusal := payback_type_refusal(cleaned.get("payback_type") or "", country=country):
        _add(errors, "payback_type", refusal, "wrong_country")

    dob = cleaned.get("date_of_birth")
    if isinstance(dob, dt.date):
        if dob > today:
            _add(errors, "date_of_birth", "Date of birth is in the future.", "future_date")
        elif today.year - dob.year - ((today.month, today.day) < (dob.month, dob.day)) < 18:
            _add(errors, "date_of_birth", "A borrower must be at least 18 years old.", "under_age")

    id_number = (cleaned.get("id_number") or "").strip().replace(" ", "")
    cleaned["id_number"] = id_number
    if id_number and cleaned.get("id_type") == IdType.SA_ID:
        if country != "ZA":
            _add(errors, "id_type", "A South African ID number is only used by ZA entities.", "wrong_country")
        else:
            for field, errs in check_sa_id(
                id_number, date_of_birth=dob if isinstance(dob, dt.date) else None, gender=cleaned.get("gender")
            ).items():
                errors.setdefault(field, []).extend(errs)

    for field, mobile in PHONE_FIELDS.items():
        raw = cleaned.get(field)
        if raw:
            try:
                cleaned[field] = parse_phone(raw, country=country, field=field, mobile=mobile)
            except ValidationError as exc:
                for f, errs in exc.error_dict.items():
                    errors.setdefault(f, []).extend(errs)
        else:
            cleaned[field] = ""

    if cleaned.get("email"):
        try:
            validate_email(cleaned["email"])
        except ValidationError:
            _add(errors, "email", f"'{cleaned['email']}' is not an email address.", "invalid_email")

    bonus = cleaned.get("bonus_month")
    if bonus not in (None, "") and not (1 <= int(bonus) <= 12):
        _add(errors, "bonus_month", "Bonus month must be 1 to 12.", "out_of_range")

    day = cleaned.get("payment_day")
    frequency = cleaned.get("payment_frequency") or PaymentFrequency.MONTHLY
    if day not in (None, ""):
        limit = 31 if frequency == PaymentFrequency.MONTHLY else 7
        if not (1 <= int(day) <= limit):
            unit = "day of the month (1–31)" if limit == 31 else "day of the week (1=Monday–7)"
            _add(errors, "payment_day", f"Payment day must be a {unit} for {frequency} pay.", "out_of_range")

    text_too_long(errors, cleaned, TEXT_LIMITS)

    info = cleaned.get("marketing_info")
    if isinstance(info, str):
        cleaned["marketing_info"] = " ".join(info.split())
        if len(cleaned["marketing_info"]) > 200:
            _add(errors, "marketing_info", "Marketing info is at most 200 characters.", "too_long")

    for field in ("salary", "credit_limit", "available_for_instalment", "budget_available_for_instalment"):
        value = cleaned.get(field)
        if value == "":
            cleaned[field] = None  # an amount cleared
        elif value is not None:
            try:
                cleaned[field] = parse_amount(value, field=field, allow_zero=True)
            except TypeError:
                _add(errors, field, f"'{value}' is not an amount.", "invalid_amount")
            except ValidationError as exc:
                refusal = exc.error_dict[field][0]
                _add(errors, field, refusal.messages[0], "negative" if str(value).strip().startswith("-") else refusal.code)

    start, end = cleaned.get("commencement_of_service"), cleaned.get("contract_expiry_date")
    if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
        _add(errors, "contract_expiry_date", "Contract expiry is before commencement of service.", "date_order")

    if errors:
        raise ValidationError(errors)
    return cleaned
