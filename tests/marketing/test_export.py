"""The XLSX writer of client-marketing exports (marketing.export.xlsx_file): every column kind
comes back from a spreadsheet reader as what it is, text is never a formula, XML's special and
illegal characters are handled, and Excel's day numbers are right around its 1900 quirk."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from decimal import Decimal

from openpyxl import load_workbook

from imali.marketing.columns import BOOL, DATE, INT, LONGTEXT, MONEY, PCT, TEXT, Column
from imali.marketing.export import xlsx_file

COLUMNS = (Column("name", "Name & <title>", TEXT), Column("number", "Number", INT), Column("amount", "Amount", MONEY),
           Column("pct", "%", PCT), Column("day", "Day", DATE), Column("flag", "Flag", BOOL),
           Column("note", "Note", LONGTEXT))


def _read(rows, title="Client marketing"):
    handle, size = xlsx_file(title, COLUMNS, rows)
    data = handle.read()
    assert len(data) == size
    return load_workbook(io.BytesIO(data)), data


def test_every_kind_reads_back_as_what_it_is():
    book, _ = _read([
        ("Dlamini & Sons <Pty>", 1001, Decimal("1809.99"), Decimal("12.50"), dt.date(2026, 3, 10), True, "line one\nline two"),
        ("", None, None, None, None, None, ""),
        ("Zulu", 0, Decimal("-0.05"), Decimal("0.00"), dt.date(1900, 3, 1), False, "  padded  "),
    ])
    sheet = book.active
    assert sheet.title == "Client marketing"
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["Name & <title>", "Number", "Amount", "%", "Day", "Flag", "Note"]
    assert rows[1] == ["Dlamini & Sons <Pty>", 1001, 1809.99, 12.5, dt.datetime(2026, 3, 10), "Yes", "line one\nline two"]
    assert rows[2] == [None] * 7  # empty cells stay empty, the row is kept
    assert rows[3] == ["Zulu", 0, -0.05, 0, dt.datetime(1900, 3, 1), "No", "  padded  "]
    assert sheet.cell(2, 3).number_format == "0.00" and sheet.cell(2, 5).number_format == "yyyy\\-mm\\-dd"
    assert sheet.freeze_panes == "A2"


def test_text_is_never_a_formula_and_illegal_characters_are_dropped():
    book, data = _read([("=HYPERLINK(\"http://x\")", 1, None, None, None, None, "+27 82\x00 555\x1f 1234"),
                        ("-2+3", 2, None, None, None, None, "@SUM(A1)")])
    sheet = book.active
    assert sheet.cell(2, 1).value == '=HYPERLINK("http://x")' and sheet.cell(2, 1).data_type == "s"
    assert sheet.cell(3, 1).value == "-2+3" and sheet.cell(3, 7).value == "@SUM(A1)"
    assert sheet.cell(2, 7).value == "+27 82 555 1234"
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert "<f>" not in package.read("xl/worksheets/sheet1.xml").decode()


def test_excel_day_numbers_around_the_1900_leap_day_and_before_its_first_day():
    book, data = _read([("a", 1, None, None, dt.date(1900, 1, 1), None, ""),
                        ("b", 2, None, None, dt.date(1900, 2, 28), None, ""),
                        ("c", 3, None, None, dt.date(1900, 3, 1), None, ""),
                        ("d", 4, None, None, dt.date(1899, 12, 31), None, "")])
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        sheet_xml = package.read("xl/worksheets/sheet1.xml").decode()
    # Excel's own numbers for these days: 1, 59 and 61 (60 is its 29 February 1900).
    assert '<c r="E2" s="1"><v>1</v></c>' in sheet_xml
    assert '<c r="E3" s="1"><v>59</v></c>' in sheet_xml
    assert '<c r="E4" s="1"><v>61</v></c>' in sheet_xml
    assert book.active.cell(5, 5).value == "1899-12-31"  # before Excel's first day: written as text


def test_a_sheet_name_is_cut_to_what_excel_allows():
    book, _ = _read([], title="Client marketing: data set [March]/2026 and more")
    assert book.active.title == "Client marketing data set March"
    assert [[c.value for c in row] for row in book.active.iter_rows()] == [[c.label for c in COLUMNS]]
