"""Provider statements (CSV or XLSX) read into payment lines, with the column mapping configurable
per setup and a default for the M-PESA organisation portal export (DOMAIN §8: Receipt No.,
Completion Time, Initiation Time, Details, Transaction Status, Paid In, Withdrawn, Balance,
Reason Type, Other Party Info, A/C No.). Pure reading here; services decide what each line is."""

from __future__ import annotations

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


def _rows(content: bytes, file_name: str):
    """(row number, list of cell values) for every row of the first sheet / the CSV; a file that
    does not read as either is refused naming the problem (and the row, where there is one)."""
    number = 0
    if file_name.lower().endswith(".xlsx"):
        from openpyxl import load_workbook

        _check_workbook_size(content)
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
            sheet = book.worksheets[0]
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                if number > MAX_ROWS:
                    raise _refuse(f"The file has more than {MAX_ROWS:,} rows: split it.")
                yield number, list(row)
            book.close()
        except ValidationError:
            raise
        except Exception as exc:  # openpyxl and zipfile raise many kinds for a file that is not a workbook
            where = f" at row {number + 1}" if number else ""
            raise _refuse(f"The file is not a readable XLSX workbook{where} ({type(exc).__name__}).") from None
        return
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = content.decode("latin-1")
    if "\x00" in text:
        raise _refuse("The file holds NUL bytes: it is not a CSV text file. Upload the statement as CSV or XLSX.")
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for number, row in enumerate(reader, start=1):
            if number > MAX_ROWS:
                raise _refuse(f"The file has more than {MAX_ROWS:,} rows: split it.")
            yield number, row
    except csv.Error as exc:
        raise _refuse(f"Line {reader.line_num}: the file does not read as CSV ({exc}).") from None


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
    header: dict[str, int] | None = None
    lines: list[Line] = []
    for number, row in _rows(content, file_name):
        cells = ["" if c is None else c for c in row]
        if header is None:
            names = [str(c).strip().lower() for c in cells]
            if wanted["transaction_id"] in names:
                header = {k: names.index(v) for k, v in wanted.items() if v in names}
                missing = [COLUMN_LABELS[k] for k in REQUIRED if k not in header]
                if missing:
                    raise ValidationError({"file": [f"Line {number}: no column for {', '.join(missing)}."]})
            continue
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
        msisdn, name = _party(cell("other_party"))
        lines.append(Line(number, trans_id, amount, completed, msisdn, name[:120], str(cell("account_reference")).strip()[:40]))
    if header is None:
        raise ValidationError({"file": [f"No header line with a '{columns['transaction_id']}' column was found."]})
    return lines
