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


def _problem(data, *, limit: int) -> tuple[str, str] | None:
    """One walk of a parsed body (iteratively: no recursion to overflow): ("depth", "") when lists or
    objects nest more than `limit` levels, ("surrogate", the top-level field or "non_field_errors")
    for a string or key holding a lone surrogate, else None."""
    pending = [(data, 1, None)]
    while pending:
        value, depth, field = pending.pop()
        if isinstance(value, str):
            if _has_surrogate(value):
                return "surrogate", field or "non_field_errors"
        elif isinstance(value, dict | list):
            if depth > limit:
                return "depth", ""
            if isinstance(value, list):
                pending.extend((child, depth + 1, field) for child in value)
                continue
            for key, child in value.items():
                if _has_surrogate(key):
                    return "surrogate", field or "non_field_errors"
                pending.append((child, depth + 1, field or key))
    return None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.") from None
        problem = _problem(data, limit=MAX_DEPTH)
        if problem is not None and problem[0] == "depth":
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.")
        if problem is not None:
            raise ValidationError({problem[1]: ["Holds a lone surrogate (such as \\ud800): not valid Unicode text."]})
        return data
