"""Exports of a kept data set, streamed: CSV in pieces as the rows are read, XLSX written cell by
cell as SpreadsheetML into a zip member, the zip in a spooled temporary file (memory up to
XLSX_SPOOL_BYTES, disk beyond). Rows are read EXPORT_CHUNK_ROWS at a time, so a data set of a
million rows never sits in memory whole, whatever the format.

The XLSX is written here rather than by a general spreadsheet library because every column's kind
is known beforehand (columns.py): each cell is one string made by its column's writer, no per-cell
type detection or object. Text is an inline string (never a formula, whatever it starts with),
numbers are numbers (money and percentages with two places), dates are dates shown ISO, flags
Yes / No. The package has the parts a spreadsheet program needs and no more: content types, the
workbook, one sheet (header row frozen), a style sheet."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence

from imali.messaging import reports

from . import selectors
from .columns import (
    BOOL,
    DATE,
    FREE_TEXT_KEYS,
    INT,
    LONGTEXT,
    MONEY,
    PCT,
    TEXT,
    Column,
    shown_columns,
    yes_no,
)
from .models import DataSet

# Up to this much of the XLSX file stays in memory; the rest goes to disk.
XLSX_SPOOL_BYTES = 8 * 1024 * 1024
# The sheet's XML is compressed in pieces of about this many characters.
_PIECE_CHARS = 256 * 1024
# Deflate level of the XLSX zip: the sheet's XML is very repetitive, so the fastest level loses
# little size (measured: about a fifth larger than level 6, in a quarter of the time).
XLSX_COMPRESS_LEVEL = 1


def dataset_columns(dataset: DataSet) -> tuple[Column, ...]:
    return shown_columns(with_settlement=dataset.with_settlement)


def dataset_csv(dataset: DataSet, *, byte_order_mark: bool = True) -> Iterator[bytes]:
    """The data set as CSV, in pieces of about 64 KB as the rows are read. Flags are Yes / No;
    free text is defused against spreadsheet formulas (messaging.reports.csv_stream)."""
    columns = dataset_columns(dataset)
    keys = tuple(c.key for c in columns)
    flags = [i for i, c in enumerate(columns) if c.kind == BOOL]

    def rows() -> Iterator[list]:
        for row in selectors.dataset_export_rows(dataset=dataset, keys=keys):
            row = list(row)
            for i in flags:
                row[i] = yes_no(row[i])
            yield row

    text = frozenset(i for i, k in enumerate(keys) if k in FREE_TEXT_KEYS)
    return reports.csv_stream([c.label for c in columns], rows(), text_columns=text, byte_order_mark=byte_order_mark)


def dataset_xlsx(dataset: DataSet, *, title: str = "Client marketing"):
    """The data set as an XLSX file: (the file, rewound; its size)."""
    columns = dataset_columns(dataset)
    keys = tuple(c.key for c in columns)
    return xlsx_file(title, columns, selectors.dataset_export_rows(dataset=dataset, keys=keys))


# --- SpreadsheetML -------------------------------------------------------------------------------
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_CONTENT_TYPES = (
    _HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
    '</Types>')
_ROOT_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK_RELS = (
    _HEAD + f'<Relationships xmlns="{_PKG_REL}">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
    'Target="styles.xml"/></Relationships>')
# Cell styles (the s attribute): 0 plain, 1 date (yyyy-mm-dd), 2 two decimal places, 3 bold (header).
_STYLES = (
    _HEAD + f'<styleSheet xmlns="{_MAIN}">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '</fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="2" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    '</styleSheet>')

# XML's three markup characters escaped; the control characters XML 1.0 cannot carry dropped.
_XML_TEXT = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;",
             **{c: None for c in range(32) if c not in (9, 10, 13)}, 0xFFFE: None, 0xFFFF: None}
_EDGE_SPACE = frozenset(" \t\n\r")
# Excel's day number of 1899-12-30 as a date ordinal: day n of Excel is that ordinal + n (from
# 1900-03-01 on; Excel counts a 29 February 1900 that never was).
_EXCEL_EPOCH = 693594
_FIRST_EXACT_SERIAL = 61


def _letters(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _text_cell(ref: str, value) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        value = str(value)
    if value[0] in _EDGE_SPACE or value[-1] in _EDGE_SPACE:  # kept only when the cell says so
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{value.translate(_XML_TEXT)}</t></is></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value.translate(_XML_TEXT)}</t></is></c>'


def _int_cell(ref: str, value) -> str:
    return "" if value is None else f'<c r="{ref}"><v>{int(value)}</v></c>'


def _decimal_cell(ref: str, value) -> str:
    return "" if value is None else f'<c r="{ref}" s="2"><v>{value:f}</v></c>'


def _date_cell(ref: str, value) -> str:
    if value is None:
        return ""
    serial = value.toordinal() - _EXCEL_EPOCH
    if serial < _FIRST_EXACT_SERIAL:
        serial -= 1
        if serial < 1:  # before Excel's first day (1900-01-01): the date as text
            return _text_cell(ref, value.isoformat())
    return f'<c r="{ref}" s="1"><v>{serial}</v></c>'


def _flag_cell(ref: str, value) -> str:
    if value is None:
        return ""
    return f'<c r="{ref}" t="inlineStr"><is><t>{"Yes" if value else "No"}</t></is></c>'


_WRITERS = {TEXT: _text_cell, LONGTEXT: _text_cell, INT: _int_cell, MONEY: _decimal_cell, PCT: _decimal_cell,
            DATE: _date_cell, BOOL: _flag_cell}


def _sheet_pieces(columns: Sequence[Column], rows: Iterable[Sequence]) -> Iterator[str]:
    """The worksheet's XML in pieces of about _PIECE_CHARS characters, written as rows come."""
    letters = [_letters(i) for i in range(len(columns))]
    writers = [_WRITERS[c.kind] for c in columns]
    cells = tuple(zip(writers, letters, strict=True))
    header = "".join(f'<c r="{col}1" s="3" t="inlineStr"><is><t xml:space="preserve">'
                     f'{c.label.translate(_XML_TEXT)}</t></is></c>' for col, c in zip(letters, columns, strict=True))
    piece = [f'{_HEAD}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}"><sheetViews><sheetView workbookViewId="0">'
             '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
             '<sheetData>'
             f'<row r="1">{header}</row>']
    size = 0
    number = 1
    for row in rows:
        number += 1
        n = str(number)
        line = f'<row r="{n}">{"".join([write(col + n, value) for (write, col), value in zip(cells, row, strict=True)])}</row>'
        piece.append(line)
        size += len(line)
        if size >= _PIECE_CHARS:
            yield "".join(piece)
            piece, size = [], 0
    piece.append("</sheetData></worksheet>")
    yield "".join(piece)


def xlsx_file(title: str, columns: Sequence[Column], rows: Iterable[Sequence]):
    """An XLSX workbook of one sheet named `title`: the columns' labels, then `rows` (values in the
    columns' order, of the columns' kinds), written as they come. Returns the file, rewound, and
    its size."""
    spool = tempfile.SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES)
    name = "".join(ch for ch in title if ch not in '[]:*?/\\')[:31] or "Sheet1"
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=XLSX_COMPRESS_LEVEL) as book:
        book.writestr("[Content_Types].xml", _CONTENT_TYPES)
        book.writestr("_rels/.rels", _ROOT_RELS)
        book.writestr("xl/workbook.xml",
                      f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
                      f'<sheet name="{name.translate(_XML_TEXT).replace(chr(34), "&quot;")}" sheetId="1" r:id="rId1"/>'
                      '</sheets></workbook>')
        book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        book.writestr("xl/styles.xml", _STYLES)
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            for piece in _sheet_pieces(columns, rows):
                sheet.write(piece.encode())
    size = spool.tell()
    spool.seek(0)
    return spool, size
