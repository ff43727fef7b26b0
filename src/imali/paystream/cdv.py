"""Bank-account check-digit verification (CDV) for South African accounts, by the table method of
the BankservAfrica user manual, Appendix E ("Account number check digit verification"). Pure: no
database, no Django, no network.

The method: find the table rows whose branch-code range holds the account's branch (and whose
account type fits); zero-pad the account number to 11 digits; multiply each digit by the row's
weight for that position (11 weights, leftmost first); add the row's fudge factor; the number is
valid when that sum is divisible by the row's modulus, or when the row's exception rule accepts
it. Several rows for the same branch range are alternatives (a bank with more than one numbering
scheme, "cascades"): the account is valid when any of them accepts it.

The official parameter table ("EFT CDV Parameters") comes from the lender's sponsoring bank and
is not public, so it is data, read from a file (`load_table`); `data/cdv_sample.csv` is a SAMPLE
for tests and the demo, not the real table. The file format is documented in docs/paystream.md.

Failure codes mirror those of hosted CDV services (DOMAIN §11): 090 check digit failed, 101
branch not in the table, 111 wrong length.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

WEIGHT_COUNT = 11
SAMPLE_TABLE = Path(__file__).with_name("data") / "cdv_sample.csv"
ACCOUNT_TYPES = ("any", "cheque", "savings", "transmission", "bond", "subscription_share")


class CdvFailure(StrEnum):
    CHECK_DIGIT = "090"
    UNKNOWN_BRANCH = "101"
    WRONG_LENGTH = "111"
    NOT_DIGITS = "112"  # Imali's: not from a hosted service; bad input before any table look-up


class CdvError(ValueError):
    """An account the table refuses; `field` is the form/API field the message is about."""

    def __init__(self, code: CdvFailure, field: str, message: str):
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


class CdvTableError(ValueError):
    """A table file that cannot be used; names the line."""


@dataclass(frozen=True)
class CdvRow:
    branch_from: int
    branch_to: int
    account_type: str  # one of ACCOUNT_TYPES; "any" fits every type
    lengths: frozenset[int]  # account-number lengths (without padding) this row accepts
    modulus: int
    fudge: int
    weights: tuple[int, ...]  # 11 weights, for the zero-padded digits left to right
    exception: str  # "" or the name of a rule in EXCEPTION_RULES
    bank: str = ""
    line: int = 0

    def weighted_sum(self, padded: str) -> int:
        return sum(int(d) * w for d, w in zip(padded, self.weights, strict=True)) + self.fudge


# Exception rules: given the row, the zero-padded digits and the weighted sum (with fudge), may
# accept an account the plain test refused. Names are Imali's own; the bank's table labels its
# exceptions with letters whose rules are described in Appendix E — when converting the bank's
# table, map each letter to a rule here (or add the rule, with vectors). A table naming a rule
# this module does not have is refused at load time: never silently passed.
def _ten_written_as_zero(row: CdvRow, padded: str, total: int) -> bool:
    # Modulus-11 schemes compute a check digit of 10 for some numbers and print it as 0: with the
    # check digit weighted 1, such a number leaves remainder 1 where the printed 0 stands.
    return row.modulus == 11 and padded[-1] == "0" and total % 11 == 1


def _without_last_two_digits(row: CdvRow, padded: str, total: int) -> bool:
    # Some banks append a two-digit suffix (sub-account) that takes no part in the check: verify
    # the number shifted right by two places under the same weights.
    shifted = ("00" + padded[:-2])
    return row.weighted_sum(shifted) % row.modulus == 0


EXCEPTION_RULES: dict[str, Callable[[CdvRow, str, int], bool]] = {
    "ten_as_zero": _ten_written_as_zero,
    "suffix_two": _without_last_two_digits,
}


@dataclass(frozen=True)
class CdvTable:
    rows: tuple[CdvRow, ...]
    source: str = ""

    def rows_for(self, branch: int, account_type: str | None) -> list[CdvRow]:
        return [r for r in self.rows if r.branch_from <= branch <= r.branch_to
                and (r.account_type == "any" or account_type is None or r.account_type == account_type)]


@dataclass(frozen=True)
class CdvResult:
    branch_code: str
    account_number: str  # digits only, as given (not padded)
    bank: str
    row_line: int  # the table line that accepted it: what an audit entry can point at
    exception_used: str


def _parse_int(text: str, *, name: str, line: int, low: int, high: int) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise CdvTableError(f"line {line}: {name} '{text}' is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise CdvTableError(f"line {line}: {name} {value} is outside {low}–{high}")
    return value


def _parse_lengths(text: str, *, line: int) -> frozenset[int]:
    lengths: set[int] = set()
    for part in text.replace(" ", "").split("|"):
        low, _, high = part.partition("-")
        a = _parse_int(low, name="length", line=line, low=1, high=WEIGHT_COUNT)
        b = _parse_int(high, name="length", line=line, low=1, high=WEIGHT_COUNT) if high else a
        if b < a:
            raise CdvTableError(f"line {line}: length range {part} runs backwards")
        lengths.update(range(a, b + 1))
    return frozenset(lengths)


def parse_table(lines: Iterable[str], *, source: str = "") -> CdvTable:
    """Read a table in Imali's CSV format (docs/paystream.md): a header line
    `branch_from,branch_to,account_type,lengths,modulus,fudge,weights,exception,bank`, then one
    row per line; blank lines and lines starting with # are skipped."""
    numbered = [(n, text.rstrip("\r\n")) for n, text in enumerate(lines, start=1)
                if text.strip() and not text.lstrip().startswith("#")]
    if not numbered:
        raise CdvTableError("the table is empty")
    reader = csv.reader(io.StringIO("\n".join(t for _, t in numbered)))
    header = [h.strip() for h in next(reader)]
    expected = ["branch_from", "branch_to", "account_type", "lengths", "modulus", "fudge", "weights", "exception", "bank"]
    if header != expected:
        raise CdvTableError(f"line {numbered[0][0]}: the header must be {','.join(expected)}")
    rows = []
    for (line, _), cells in zip(numbered[1:], reader, strict=True):
        if len(cells) != len(expected):
            raise CdvTableError(f"line {line}: {len(cells)} columns, expected {len(expected)}")
        branch_from = _parse_int(cells[0], name="branch_from", line=line, low=0, high=999999)
        branch_to = _parse_int(cells[1], name="branch_to", line=line, low=0, high=999999)
        if branch_to < branch_from:
            raise CdvTableError(f"line {line}: branch range {branch_from}–{branch_to} runs backwards")
        account_type = cells[2].strip().lower()
        if account_type not in ACCOUNT_TYPES:
            raise CdvTableError(f"line {line}: account type '{account_type}' is not one of {', '.join(ACCOUNT_TYPES)}")
        weights = tuple(_parse_int(w, name="weight", line=line, low=0, high=99) for w in cells[6].split())
        if len(weights) != WEIGHT_COUNT:
            raise CdvTableError(f"line {line}: {len(weights)} weights, expected {WEIGHT_COUNT}")
        exception = cells[7].strip()
        if exception and exception not in EXCEPTION_RULES:
            raise CdvTableError(f"line {line}: exception rule '{exception}' is not one this module implements "
                                f"({', '.join(sorted(EXCEPTION_RULES))})")
        rows.append(CdvRow(
            branch_from=branch_from, branch_to=branch_to, account_type=account_type,
            lengths=_parse_lengths(cells[3], line=line),
            modulus=_parse_int(cells[4], name="modulus", line=line, low=2, high=999),
            fudge=_parse_int(cells[5], name="fudge", line=line, low=0, high=999),
            weights=weights, exception=exception, bank=cells[8].strip(), line=line))
    if not rows:
        raise CdvTableError("the table has a header but no rows")
    return CdvTable(rows=tuple(rows), source=source)


def load_table(path: str | Path = SAMPLE_TABLE) -> CdvTable:
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        return parse_table(handle, source=str(path))


def _digits(value: str) -> str:
    # People type account numbers with spaces or dashes in groups; nothing else is allowed.
    return "".join(ch for ch in str(value).strip() if ch not in " -")


def verify(table: CdvTable, *, branch_code: str, account_number: str, account_type: str | None = None,
           branch_field: str = "branch_code", account_field: str = "account_number") -> CdvResult:
    """The account if the table accepts it; otherwise CdvError naming the field and the branch."""
    branch = _digits(branch_code)
    if not (branch.isascii() and branch.isdigit() and len(branch) == 6):
        raise CdvError(CdvFailure.NOT_DIGITS, branch_field, "Enter the branch code as 6 digits.")
    number = _digits(account_number)
    if not (number.isascii() and number.isdigit()):
        raise CdvError(CdvFailure.NOT_DIGITS, account_field, "Enter the account number as digits only.")
    if not 1 <= len(number) <= WEIGHT_COUNT:
        raise CdvError(CdvFailure.WRONG_LENGTH, account_field,
                       f"An account number has at most {WEIGHT_COUNT} digits; this one has {len(number)}.")
    if set(number) == {"0"}:
        # Zero is divisible by every modulus: a table test would pass it.
        raise CdvError(CdvFailure.CHECK_DIGIT, account_field, "The account number cannot be all zeros.")
    rows = table.rows_for(int(branch), account_type)
    if not rows:
        raise CdvError(CdvFailure.UNKNOWN_BRANCH, branch_field,
                       f"Branch code {branch} is not in the check-digit table"
                       + (f" for {account_type.replace('_', ' ')} accounts." if account_type else "."))
    fitting = [r for r in rows if len(number) in r.lengths]
    if not fitting:
        allowed = sorted(set().union(*(r.lengths for r in rows)))
        raise CdvError(CdvFailure.WRONG_LENGTH, account_field,
                       f"An account number for branch {branch} has {_lengths_text(allowed)} digits; this one has {len(number)}.")
    padded = number.zfill(WEIGHT_COUNT)
    for row in fitting:
        total = row.weighted_sum(padded)
        if total % row.modulus == 0:
            return CdvResult(branch, number, row.bank, row.line, "")
        if row.exception and EXCEPTION_RULES[row.exception](row, padded, total):
            return CdvResult(branch, number, row.bank, row.line, row.exception)
    raise CdvError(CdvFailure.CHECK_DIGIT, account_field, f"The account number fails the check digit for branch {branch}.")


def _lengths_text(lengths: list[int]) -> str:
    if len(lengths) == 1:
        return str(lengths[0])
    if lengths == list(range(lengths[0], lengths[-1] + 1)):
        return f"{lengths[0]} to {lengths[-1]}"
    return ", ".join(map(str, lengths[:-1])) + f" or {lengths[-1]}"
