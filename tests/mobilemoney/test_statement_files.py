"""Statement files that are huge, binary or hostile: each refused naming the problem (a 400 on the
API and the screen, through `statement_upload`), never a 500 or a walk through millions of rows.
The files are made here, each in well under a second."""

from __future__ import annotations

import io
import os
import zipfile

import pytest
from django.core.exceptions import ValidationError

from imali.mobilemoney import statement
from imali.mobilemoney.statement import read_statement

from .conftest import workbook

HEADER = b"Receipt No.,Completion Time,Transaction Status,Paid In\n"
LINE = b"SA00000001,2026-01-05 10:00:00,Completed,150.00\n"


def read(content: bytes, file_name: str = "day.csv"):
    return read_statement(content, file_name, columns={}, time_zone="Africa/Johannesburg")


def refusal(content: bytes, file_name: str = "day.csv") -> str:
    with pytest.raises(ValidationError) as caught:
        read(content, file_name)
    return " ".join(caught.value.message_dict["file"])


def test_a_plain_statement_still_reads():
    lines = read(HEADER + LINE)
    assert [(line.transaction_id, str(line.amount), line.problem) for line in lines] == [("SA00000001", "150.00", "")]


def test_a_cell_longer_than_csv_allows_is_refused_naming_the_line():
    message = refusal(HEADER + LINE + b"SA2," + b"9" * 200_000 + b",Completed,1\n")
    assert message.startswith("Line 3: the file does not read as CSV") and "field limit" in message


def test_a_binary_file_is_refused():
    assert "NUL bytes" in refusal(HEADER + os.urandom(64 * 1024) + b"\x00")


def test_a_nul_byte_in_a_cell_is_refused():
    assert "NUL bytes" in refusal(HEADER + b"SA\x001,2026-01-05 10:00:00,Completed,150.00\n")


def test_a_file_with_carriage_returns_for_line_ends_reads():
    # Read as text with "\n" lines, a lone "\r" was a "new-line character seen in unquoted field": a 500.
    lines = read((HEADER + LINE + LINE.replace(b"SA00000001", b"SA00000002")).replace(b"\n", b"\r"))
    assert [line.transaction_id for line in lines] == ["SA00000001", "SA00000002"]


def test_ten_thousand_columns_read():
    wide = b",".join(b"c%d" % i for i in range(10_000))
    lines = read(HEADER.rstrip(b"\n") + b"," + wide + b"\n" + LINE.rstrip(b"\n") + b"," + b",".join([b"x"] * 10_000) + b"\n")
    assert [line.transaction_id for line in lines] == ["SA00000001"]


def test_a_file_of_blank_rows_is_refused_without_walking_them(monkeypatch):
    monkeypatch.setattr(statement, "MAX_ROWS", 1_000)
    assert "more than 1,000 rows" in refusal(HEADER + b"\n" * 5_000 + LINE)


def _zip(parts: dict[str, bytes | int]) -> bytes:
    """An XLSX-shaped zip; an int part is that many spaces, written in chunks (a zip bomb)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        for name, body in parts.items():
            with book.open(name, "w", force_zip64=True) as part:
                if isinstance(body, int):
                    chunk = b" " * (1024 * 1024)
                    for _ in range(body // len(chunk)):
                        part.write(chunk)
                else:
                    part.write(body)
    return buffer.getvalue()


def test_a_zip_bomb_workbook_is_refused_before_it_is_unpacked():
    bomb = _zip({"[Content_Types].xml": b"<Types/>", "xl/worksheets/sheet1.xml": statement.MAX_XLSX_UNPACKED_BYTES + 2**20})
    assert len(bomb) < 1024 * 1024
    assert "unpacks to more than 200 MB" in refusal(bomb, "day.xlsx")


def test_a_workbook_whose_text_cells_are_huge_is_refused():
    book = _zip({"[Content_Types].xml": b"<Types/>", "xl/sharedStrings.xml": statement.MAX_XLSX_SHARED_STRINGS_BYTES + 2**20})
    assert "text cells hold more than 50 MB" in refusal(book, "day.xlsx")


_workbook = workbook


def test_a_workbook_of_blank_rows_is_refused_without_walking_them(monkeypatch):
    monkeypatch.setattr(statement, "MAX_ROWS", 100)
    content = _workbook([["Receipt No.", "Completion Time", "Transaction Status", "Paid In"], *[[None, " "]] * 300])
    assert "more than 100 rows" in refusal(content, "day.xlsx")


def test_a_workbook_that_breaks_while_it_is_read_is_refused_naming_the_row():
    content = _workbook([["Receipt No.", "Completion Time", "Transaction Status", "Paid In"],
                         *[["SA1", "2026-01-05 10:00:00", "Completed", 1]] * 50])
    # The sheet's XML cut short: the workbook opens, and fails part-way through its rows.
    source = zipfile.ZipFile(io.BytesIO(content))
    parts = {info.filename: source.read(info) for info in source.infolist()}
    sheet = parts["xl/worksheets/sheet1.xml"]
    parts["xl/worksheets/sheet1.xml"] = sheet[: len(sheet) // 2]
    message = refusal(_zip(parts), "day.xlsx")
    assert message.startswith("The file is not a readable XLSX workbook")
