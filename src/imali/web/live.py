"""Live status on a page without a reload: the page carries a poller element (htmx, served
locally) that asks a fragment view every few seconds for the rows still in flight; the answer swaps
each row's status in place (out of band) and replaces the poller with one for the rows still not
final, or with an idle element once all are, so polling stops by itself."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from imali.core.forms import request_ids
from imali.messaging.models import OutboxStatus

POLL_SECONDS = 3
# A page shows at most 50 rows; a longer list of ids is not from our pages.
MAX_POLLED = 100
SMS_NOT_FINAL = frozenset({OutboxStatus.QUEUED, OutboxStatus.SUBMITTED})


@dataclass(frozen=True)
class Poll:
    element_id: str
    url: str  # "" once everything is final: the element then carries no trigger
    seconds: int = POLL_SECONDS


def polled_ids(request) -> list[int]:
    """The ids the poller asks about (?id=1&id=2), whole positive numbers in ASCII digits, at most
    MAX_POLLED; anything else is not from our pages: a 400 naming `id` (core.forms.BadParameter)."""
    return request_ids(request.GET, "id", limit=MAX_POLLED)


def poll_for(element_id: str, base_url: str, pending_ids) -> Poll:
    ids = sorted(set(pending_ids))[:MAX_POLLED]
    return Poll(element_id=element_id, url=f"{base_url}?{urlencode([('id', i) for i in ids])}" if ids else "")
