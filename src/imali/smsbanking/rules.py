"""Pure SMS-banking rules: reading a message into a command and its words, the officer's
collection grammar, PIN rules, sheet codes, and keeping a reply within two SMS segments."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from imali.core.money import parse_amount
from imali.messaging.segments import segment_count

from .models import DEFAULT_KEYWORDS, Command

MAX_REPLY_SEGMENTS = 2
PIN_LENGTHS = range(4, 7)
MAX_ENTRIES = 20  # one officer SMS; more entries would not fit the confirmation reply
# Sheet codes: no 0/O, 1/I/L, 5/S, 2/Z (read aloud and retyped on a small keypad).
SHEET_ALPHABET = "346789ABCDEFGHJKMNPQRTUVWXY"
SHEET_CODE_LENGTH = 6


def words_of(text: str) -> list[str]:
    return text.replace(",", " , ").replace(";", " ; ").split()


def command_of(text: str, aliases: dict[str, str]) -> tuple[str, list[str]]:
    """(command, the words after the keyword). An alias of the entity wins over nothing; the
    English defaults always work."""
    words = text.strip().split()
    if not words:
        return Command.UNKNOWN, []
    first = words[0].upper().strip(".!?:")
    command = DEFAULT_KEYWORDS.get(first) or aliases.get(first)
    if command is None:
        return Command.UNKNOWN, words
    return command, words[1:]


def pin_problem(pin: str) -> str:
    """Why `pin` is not acceptable, or "" when it is."""
    if not pin.isascii() or not pin.isdigit() or len(pin) not in PIN_LENGTHS:
        return "A PIN is 4 to 6 digits."
    if len(set(pin)) == 1:
        return "A PIN may not repeat one digit."
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:], strict=False)}
    if steps in ({1}, {-1}):
        return "A PIN may not be a run of digits such as 1234."
    return ""


def new_sheet_code() -> str:
    return "".join(secrets.choice(SHEET_ALPHABET) for _ in range(SHEET_CODE_LENGTH))


def looks_like_sheet_code(word: str) -> bool:
    return len(word) == SHEET_CODE_LENGTH and all(c in SHEET_ALPHABET for c in word.upper())


@dataclass(frozen=True)
class Entry:
    """One payment of an officer's message: client number, loan id (None: the client's only open
    loan) and amount."""

    client_number: int
    loan_id: int | None
    amount: Decimal


_ENTRY = re.compile(r"^(?P<client>[0-9]{1,12})(?:/(?P<loan>[0-9]{1,12}))?$")


class GrammarError(ValueError):
    """An officer's message that does not follow the collection grammar; its text is the reply."""


def after_keyword(text: str) -> str:
    """The text after its first word, line breaks kept (an officer's entries may be one a line)."""
    parts = text.strip().split(None, 1)
    return parts[1] if len(parts) == 2 else ""


def parse_collection(words: list[str] | str) -> list[Entry]:
    """The entries of `PAY <client>[/<loan>] <amount>[, <client>[/<loan>] <amount>]...`
    (`words`: what follows PAY, as words or as the text with its line breaks, which separate
    entries like ',' and ';'). Raises GrammarError with a message for the officer."""
    text = words if isinstance(words, str) else " ".join(words)
    # A line break ends an entry like ',' does; a blank line or a ',' before the break adds none.
    lines = [line.strip().rstrip(",;").strip() for line in text.splitlines()]
    text = ", ".join(line for line in lines if line)
    chunks = [c.strip() for c in re.split(r"[,;]", text)]
    if not any(chunks):
        raise GrammarError("Nothing to record. Send PAY <client> <amount>, e.g. PAY 1001 250, 1002/17 100.50")
    entries: list[Entry] = []
    seen: set[tuple[int, int | None]] = set()
    for position, chunk in enumerate(chunks, start=1):
        parts = chunk.split()
        if len(parts) != 2:
            raise GrammarError(f"Payment {position} '{chunk[:20]}' must be <client>[/<loan>] <amount>.")
        match = _ENTRY.match(parts[0])
        if match is None:
            raise GrammarError(f"Payment {position}: '{parts[0][:15]}' is not a client number (or client/loan).")
        try:
            amount = parse_amount(parts[1], field="amount")
        except ValidationError:
            raise GrammarError(f"Payment {position}: '{parts[1][:15]}' is not an amount (digits, at most 2 decimals).") from None
        entry = Entry(int(match["client"]), int(match["loan"]) if match["loan"] else None, amount)
        key = (entry.client_number, entry.loan_id)
        if key in seen:
            raise GrammarError(f"Payment {position}: client {entry.client_number} is in the message twice.")
        seen.add(key)
        entries.append(entry)
    if len(entries) > MAX_ENTRIES:
        raise GrammarError(f"At most {MAX_ENTRIES} payments in one SMS; send the rest in another.")
    return entries


def fit(text: str, *, more: str = "") -> str:
    """`text` if it fits two segments, else cut at a word with `more` (or "…") appended."""
    if segment_count(text) <= MAX_REPLY_SEGMENTS:
        return text
    tail = more or "..."
    words = text.split(" ")
    while words and segment_count(" ".join(words) + " " + tail) > MAX_REPLY_SEGMENTS:
        words.pop()
    return " ".join(words) + " " + tail
