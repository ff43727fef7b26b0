"""What the dispatcher needs of a gateway, whatever protocol it speaks."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# What an outside system sends may hold NUL characters (a UCS-2 SMS can carry U+0000, an HTTP
# body anything); PostgreSQL text cannot store them, so one in a reply, receipt or error would
# fail the whole batch being stored. Every event a gateway hands over is cleaned as it is made.
NUL, NUL_SHOWN_AS = "\x00", "\ufffd"


def _without_nul(event, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(event, name)
        if isinstance(value, str) and NUL in value:
            object.__setattr__(event, name, value.replace(NUL, NUL_SHOWN_AS))


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    RETRY = "retry"  # connection lost, system error: try again later, with back-off
    # The gateway said "slower" (ESME_RTHROTTLED, ESME_RMSGQFUL): try again soon. The
    # message is fine, so this does not count as a failed attempt.
    THROTTLED = "throttled"
    PERMANENT = "permanent"  # the gateway will never take this message


@dataclass(frozen=True)
class Submission:
    outbox_id: int
    number: str
    text: str
    source_addr: str = ""


@dataclass(frozen=True)
class SubmitResult:
    outbox_id: int
    outcome: Outcome
    provider_message_id: str = ""
    error: str = ""
    parts_submitted: int = 0

    def __post_init__(self) -> None:
        _without_nul(self, ("provider_message_id", "error"))


@dataclass(frozen=True)
class Receipt:
    gateway: str
    provider_message_id: str
    state: str  # DELIVRD, UNDELIV, EXPIRED, REJECTD, ...
    error_code: str = ""

    def __post_init__(self) -> None:
        _without_nul(self, ("gateway", "provider_message_id", "state", "error_code"))

    @property
    def delivered(self) -> bool:
        return self.state == "DELIVRD"


@dataclass(frozen=True)
class MobileOriginated:
    gateway: str
    provider_id: str
    number: str
    to_address: str
    text: str

    def __post_init__(self) -> None:
        _without_nul(self, ("gateway", "provider_id", "number", "to_address", "text"))


@dataclass(frozen=True)
class MobileOriginatedPart:
    """One part of a concatenated mobile-originated message (UDH IEI 0x00 / 0x08, or the SAR
    optional parameters): stored until its set is complete, then reassembled."""

    gateway: str
    provider_id: str
    number: str
    to_address: str
    reference: int
    total: int
    seq: int
    text: str

    def __post_init__(self) -> None:
        _without_nul(self, ("gateway", "provider_id", "number", "to_address", "text"))


class Transport(Protocol):
    name: str

    @property
    def is_up(self) -> bool: ...

    def submit_batch(self, items: list[Submission], timeout: float = 60.0) -> list[SubmitResult]: ...

    def drain_events(self, limit: int = 10000) -> list[Receipt | MobileOriginated]: ...

    def close(self) -> None: ...


def drain_queue(events: queue.SimpleQueue | queue.Queue, limit: int) -> list:
    """Up to `limit` events waiting on a transport's queue, without blocking."""
    out = []
    while len(out) < limit:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            break
    return out
