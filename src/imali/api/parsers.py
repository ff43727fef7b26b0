"""The API's JSON parser: DRF's, with a bound on how deeply a body may nest.

Python's JSON reader raises RecursionError (not ValueError) on a body nested about a thousand
levels deep, which DRF lets through as a 500; and a body just under that limit would still break
whatever later walks it (serializers, the audit log's JSON). No request of ours nests more than a
few levels, so anything deeper than MAX_DEPTH is a 400 saying so.
"""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_DEPTH = 32


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
        return data
