"""Rules of an email send that need no database: attachment limits and addresses (DOMAIN §3)."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from imali.messaging.errors import MessagingError

MAX_ATTACHMENT_BYTES = 7 * 1024 * 1024  # per email, all attachments together
MAX_SUBJECT_LENGTH = 200


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str = ""

    @property
    def content_type(self) -> str:
        return self.mimetype or mimetypes.guess_type(self.filename)[0] or "application/octet-stream"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def attachment_problems(attachments: Sequence[Attachment]) -> list[str]:
    problems = []
    for a in attachments:
        if not a.filename or "/" in a.filename or "\\" in a.filename:
            problems.append(f"Attachment '{a.filename}' needs a plain file name.")
    total = sum(len(a.content) for a in attachments)
    if total > MAX_ATTACHMENT_BYTES:
        problems.append(f"Attachments come to {_megabytes(total)}; an email may carry at most "
                        f"{_megabytes(MAX_ATTACHMENT_BYTES)} ({MAX_ATTACHMENT_BYTES} bytes).")
    return problems


def address_problem(address: str) -> str | None:
    try:
        validate_email(address)
    except ValidationError:
        return f"'{address}' is not a valid email address."
    return None


def check_attachments(attachments: Sequence[Attachment]) -> None:
    problems = attachment_problems(attachments)
    if problems:
        raise ValidationError({"attachments": [ValidationError(p, code=MessagingError.ATTACHMENTS_INVALID.value) for p in problems]})
