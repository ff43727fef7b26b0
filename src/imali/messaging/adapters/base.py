"""What the dispatcher needs of a gateway, whatever protocol it speaks."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


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


@dataclass(frozen=True)
class Receipt:
    gateway: str
    provider_message_id: str
    state: str  # DELIVRD, UNDELIV, EXPIRED, REJECTD, ...
    error_code: str = ""

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
