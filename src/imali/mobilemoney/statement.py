"""Provider statements (CSV or XLSX) read into payment lines, with the column mapping configurable
per setup and a default for the M-PESA organisation portal export (DOMAIN §8: Receipt No.,
Completion Time, Initiation Time, Details, Transaction Status, Paid In, Withdrawn, Balance,
Reason Type, Other Party Info, A/C No.). Pure reading here; services decide what each line is."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
import zipfile
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from imali.core.money import parse_amount

# Our field → the column header in the file.
DEFAULT_COLUMNS = {
    "transaction_id": "Receipt No.",
    "completed_at": "Completion Time",
    "status": "Transaction Status",
    "paid_in": "Paid In",
    "other_party": "Other Party Info",
    "account_reference": "A/C No.",
}
COLUMN_LABELS = {
    "transaction_id": "Transaction number column",
    "completed_at": "Completion time column",
    "status": "Transaction status column",
    "paid_in": "Amount paid in column",
    "other_party": "Payer (phone and name) column",
    "account_reference": "Account reference column",
}
REQUIRED = ("transaction_id", "completed_at", "paid_in")
COMPLETED = {"completed", "success", "successful", ""}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M",
                "%d.%m.%Y %H:%M:%S", "%Y%m%d%H%M%S")
MAX_LINES = 200_000
# A portal export of 200,000 lines is about 30 MB.
MAX_FILE_BYTES = 40 * 1024 * 1024
# Blank rows count too, so a file of millions of empty rows is refused rather than walked.
MAX_ROWS = MAX_LINES + 10_000
# An XLSX is a zip: its parts unpacked may be far larger than the file (a "zip bomb" is 40 MB that
# unpacks to terabytes). A 200,000-line portal export unpacks to well under 100 MB; the shared
# strings are read into memory whole, so they have a tighter bound. The sizes are the zip's own
# headers, which also bound what zipfile will unpack.
MAX_XLSX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_XLSX_SHARED_STRINGS_BYTES = 50 * 1024 * 1024
# The header is looked for in the first rows only (the portal's preamble is a few lines), and rows
# are cut to its width: a file of wide rows and no header is not walked cell by cell to the end.
MAX_HEADER_ROW = 100
MAX_COLUMNS = 16_384  # a spreadsheet's own limit
MAX_LINE_CHARS = 1024 * 1024
# A completion time outside these is a typing or export error, not a payment: year 1 in the
# entity's zone cannot even be stored (before the earliest UTC time), and a payment from the future
# would post a receipt dated then. A day of slack for a provider's clock and zones.
EARLIEST_PAYMENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_SLACK = dt.timedelta(days=1)


def _refuse(message: str):
    return ValidationError({"file": [message]})


def _check_workbook_size(content: bytes) -> None:
    try:
        parts = zipfile.ZipFile(io.BytesIO(content)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # openpyxl names the problem
    limit = MAX_XLSX_UNPACKED_BYTES // (1024 * 1024)
    if sum(part.file_size for part in parts) > MAX_XLSX_UNPACKED_BYTES:
        raise _refuse(f"The workbook unpacks to more than {limit} MB: save the statement as CSV, or split it.")
    if any(part.filename.endswith("sharedStrings.xml") and part.file_size > MAX_XLSX_SHARED_STRINGS_BYTES for part in parts):
        raise _refuse(f"The workbook's text cells hold more than {MAX_XLSX_SHARED_STRINGS_BYTES // (1024 * 1024)} MB: "
                      "save the statement as CSV, or split it.")


@dataclass(frozen=True)
class Line:
    number: int  # the line (row) number in the file, as a spreadsheet shows it
    transaction_id: str = ""
    amount: Decimal | None = None
    completed_at: dt.datetime | None = None
    msisdn: str = ""
    payer_name: str = ""
    account_reference: str = ""
    problem: str = ""  # why the line cannot be imported
    skip: str = ""  # a line that is not a payment in (withdrawal, charge)


def _preamble(rows, header_of):
    """The rows up to and including the header (the first row `header_of` reads as one: at most
    MAX_HEADER_ROW down, at most MAX_COLUMNS wide); returns (the header's row number, its width:
    one past its last named column), or None when there is no header."""
    for number, row in rows:
        if number > MAX_HEADER_ROW:
            break
        if len(row) > MAX_COLUMNS:
            raise _refuse(f"Line {number} has more than {MAX_COLUMNS:,} columns.")
        row = list(row)
        yield number, row
        header = header_of(row)
        if header is not None:
            return number, max(header.values()) + 1
    return None


def _xlsx_rows(content: bytes, header_of):
    from openpyxl import load_workbook

    _check_workbook_size(content)
    number = 0
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        # The sheet's <dimension> is its writer's claim: believed, rows below it were dropped
        # unread, and a five-kilobyte file claiming A1:XFD1048576 was walked as a million rows of
        # 16,384 cells.
        sheet.reset_dimensions()
        found = yield from _preamble(enumerate(sheet.iter_rows(values_only=True), start=1), header_of)
        if found is None:
            return
        header_row, width = found
        number = header_row
        # A second pass from below the header with each row cut to the header's width by openpyxl
        # itself: a stray cell far to the right does not make every row 16,384 cells.
        for number, row in enumerate(sheet.iter_rows(min_row=header_row + 1, max_col=width, values_only=True),
                                     start=header_row + 1):
            if number > MAX_ROWS:
                raise _refuse(f"The file has more than {MAX_ROWS:,} rows: split it.")
            yield number, row
        book.close()
    except ValidationError:
        raise
    except Exception as exc:  # openpyxl and zipfile raise many kinds for a file that is not a workbook
        where = f" at row {number + 1}" if number else ""
        raise _refuse(f"The file is not a readable XLSX workbook{where} ({type(exc).__name__}).") from None


def _encoding(content: bytes) -> str:
    """UTF-16 by its byte-order mark (Excel's "Unicode text"), else UTF-8 (a BOM dropped) when
    every byte reads as it, else Latin-1. Checked in pieces: no second copy of the file."""
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(content)
    try:
        for start in range(0, len(content), 1 << 20):
            decoder.decode(view[start:start + (1 << 20)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def _csv_rows(content: bytes, header_of):
    encoding = _encoding(content)
    if encoding != "utf-16" and b"\x00" in content:
        raise _refuse("The file holds NUL bytes: it is not a CSV text file. Upload the statement as CSV or XLSX.")
    text = io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="")
    sample = text.read(4096)
    text.seek(0)
    counts = {d: sample.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    physical = 0

    def lines():
        # Read a bounded piece at a time: one 40 MB line of commas was 40 million cells in memory.
        nonlocal physical
        while line := text.readline(MAX_LINE_CHARS + 1):
            physical += 1
            if len(line) > MAX_LINE_CHARS:
                raise _refuse(f"Line {physical} is longer than {MAX_LINE_CHARS:,} characters: it is not a statement line.")
            if "\x00" in line:
                raise _refuse("The file holds NUL bytes: it is not a CSV text file. Upload the statement as CSV or XLSX.")
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        found = yield from _preamble(enumerate(reader, start=1), header_of)
        if found is None:
            return
        header_row, width = found
        for number, row in enumerate(reader, start=header_row + 1):
            if number > MAX_ROWS:
                raise _refuse(f"The file has more than {MAX_ROWS:,} rows: split it.")
            yield number, row[:width]
    except csv.Error as exc:
        raise _refuse(f"Line {reader.line_num}: the file does not read as CSV ({exc}).") from None
    except UnicodeDecodeError:
        raise _refuse(f"Line {physical + 1}: the file does not read as {encoding.upper()} text.") from None


def _rows(content: bytes, file_name: str, header_of):
    """(row number, cell values) for every row of the first sheet / the CSV down to the header and
    below it, cut to the header's width; a file that does not read as either is refused naming the
    problem (and the row, where there is one)."""
    if file_name.lower().endswith(".xlsx"):
        return _xlsx_rows(content, header_of)
    return _csv_rows(content, header_of)


# The portal's own layout (TIME_FORMATS[0] and [1] with two-digit fields): read without strptime,
# several times faster on a file of 100,000 lines; anything else goes through the formats.
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?\Z")


def _time(value, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    text = str(value or "").strip()
    if _ISO_TIME.match(text):
        try:
            return dt.datetime.fromisoformat(text).replace(tzinfo=zone)
        except ValueError:  # a month 13 or the like: no other format reads this layout
            return None
    for fmt in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    return None


def _party(value: str) -> tuple[str, str]:
    """"254712345678 - JANE DOE" → ("254712345678", "JANE DOE")."""
    text = str(value or "").strip()
    match = re.match(r"^\+?(\d{6,15})\s*[-–]?\s*(.*)$", text)
    if match:
        return match.group(1), match.group(2).strip()
    return "", text


def _amount_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        # A spreadsheet cell holds a binary float: its shortest repr is the figure typed in.
        return repr(value)
    return str(value).strip().replace(",", "").replace(" ", "")


def read_statement(content: bytes, file_name: str, *, columns: dict[str, str], time_zone: str) -> list[Line]:
    """Every data line of the statement, each either readable or carrying its problem."""
    columns = {**DEFAULT_COLUMNS, **{k: v for k, v in (columns or {}).items() if v}}
    wanted = {k: v.strip().lower() for k, v in columns.items()}
    zone = zoneinfo.ZoneInfo(time_zone)
    latest = dt.datetime.now(dt.UTC) + FUTURE_SLACK
    header: dict[str, int] | None = None
    lines: list[Line] = []
    number = 0

    def header_of(row) -> dict[str, int] | None:
        nonlocal header
        names = ["" if c is None else str(c).strip().lower() for c in row]
        if wanted["transaction_id"] not in names:
            return None
        found = {k: names.index(v) for k, v in wanted.items() if v in names}
        missing = [COLUMN_LABELS[k] for k in REQUIRED if k not in found]
        if missing:
            raise _refuse(f"Line {number}: no column for {', '.join(missing)}.")
        header = found
        return header

    for number, row in _rows(content, file_name, header_of):
        if header is None:
            continue  # the preamble above the header (the header row itself is read by header_of)
        cells = ["" if c is None else c for c in row]
        if not any(str(c).strip() for c in cells):
            continue
        if len(lines) >= MAX_LINES:
            raise ValidationError({"file": [f"The file has more than {MAX_LINES:,} lines: split it."]})

        def cell(key: str, header=header, cells=cells):
            index = header.get(key)
            return cells[index] if index is not None and index < len(cells) else ""

        trans_id = str(cell("transaction_id")).strip()
        if not trans_id:
            lines.append(Line(number, problem="No transaction number."))
            continue
        if len(trans_id) > 64:
            lines.append(Line(number, trans_id[:64], problem="The transaction number is longer than 64 characters."))
            continue
        status = str(cell("status")).strip().lower()
        paid_in = _amount_text(cell("paid_in"))
        if paid_in in ("", "0", "0.00", "-"):
            lines.append(Line(number, trans_id, skip="Not a payment in."))
            continue
        if status not in COMPLETED:
            lines.append(Line(number, trans_id, skip=f"Transaction status is {cell('status')}."))
            continue
        try:
            amount = parse_amount(paid_in, field="paid_in")
        except ValidationError:
            lines.append(Line(number, trans_id, problem=f"Paid in '{paid_in}' is not an amount."))
            continue
        completed = _time(cell("completed_at"), zone)
        if completed is None:
            lines.append(Line(number, trans_id, amount, problem=f"Completion time '{cell('completed_at')}' is not a date and time."))
            continue
        if not EARLIEST_PAYMENT <= completed <= latest:
            lines.append(Line(number, trans_id, amount, problem=f"Completion time '{cell('completed_at')}' is not when a "
                                                                 "payment can have been made (before 2000 or in the future)."))
            continue
        msisdn, name = _party(cell("other_party"))
        lines.append(Line(number, trans_id, amount, completed, msisdn, name[:120], str(cell("account_reference")).strip()[:40]))
    if header is None:
        raise ValidationError({"file": [f"No header line with a '{columns['transaction_id']}' column was found "
                                        f"in the first {MAX_HEADER_ROW} lines."]})
    return lines
