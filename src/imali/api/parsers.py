"""The API's JSON parser: DRF's, with a bound on how deeply a body may nest, and no lone surrogates.

Python's JSON reader raises RecursionError (not ValueError) on a body nested about a thousand
levels deep, which DRF lets through as a 500; and a body just under that limit would still break
whatever later walks it (serializers, the audit log's JSON). No request of ours nests more than a
few levels, so anything deeper than MAX_DEPTH is a 400 saying so.

JSON may spell a lone UTF-16 surrogate ("\\ud800"), which no UTF-8 text holds: the database
cannot store it and the answer that quotes it back ("'\\ud800' is not a valid choice") cannot be
encoded (a 500). Such a string is a 400 naming its field.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

MAX_DEPTH = 32


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _surrogate_field(data) -> str | None:
    """The top-level field (or "non_field_errors") holding a string, or a key, with a lone surrogate."""
    pending = [(data, None)]
    while pending:
        value, field = pending.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return field or "non_field_errors"
        elif isinstance(value, dict):
            for key, child in value.items():
                inner = field or (key if isinstance(key, str) and not _has_surrogate(key) else None)
                if _has_surrogate(key):
                    return inner or "non_field_errors"
                pending.append((child, inner))
        elif isinstance(value, list):
            pending.extend((child, field) for child in value)
    return None


def _too_deep(data, *, limit: int) -> bool:
    """Whether lists/objects nest more than `limit` levels (iteratively: no recursion to overflow)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.") from None
        if _too_deep(data, limit=MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.")
        field = _surrogate_field(data)
        if field is not None:
            raise ValidationError({field: ["Holds a lone surrogate (such as \\ud800): not valid Unicode text."]})
        return data
