"""Errors a user can read. Every field error names the field it is about."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def field_error(field: str, message: str, *, code: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code)]})


def merge_errors(errors: dict[str, list[ValidationError]]) -> ValidationError:
    return ValidationError(errors)
