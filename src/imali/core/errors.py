"""Errors a user can read. Every field error names the field it is about."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def field_error(field: str, message: str, *, code: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code)]})


def merge_errors(errors: dict[str, list[ValidationError]]) -> ValidationError:
    return ValidationError(errors)


class TooSoon(ValidationError):
    """A refusal because the same thing was asked for too recently: a field error like any other
    on a screen, a 429 with Retry-After in the API (api.errors.exception_handler)."""

    def __init__(self, field: str, message: str, *, code: str, retry_after: int):
        super().__init__({field: [ValidationError(message, code=code)]})
        self.retry_after = max(int(retry_after), 1)
