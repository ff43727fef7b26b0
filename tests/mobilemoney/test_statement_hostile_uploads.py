"""Hostile statement files sent through the real HTTP stack, the API and the screen alike: each is
refused with a 400 naming the file field (or read, where the file is a fair statement in another
dress), quickly, in bounded memory, and nothing is written. The files are made here, small."""

from __future__ import annotations

import io
import re
import time
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from imali.core.models import AuditEntry
from imali.mobilemoney import statement
from imali.mobilemoney.models import StatementImport

from .conftest import offline_setup, workbook

pytestmark = pytest.mark.django_db

HEADER = ["Receipt No.", "Completion Time", "Transaction Status", "Paid In"]
CSV_HEADER = b"Receipt No.,Completion Time,Transaction Status,Paid In\n"
CSV_LINE = b"SA00000001,2026-01-05 10:00:00,Completed,150.00\n"


@pytest.fixture
def setup(entity, lender_user):
    return offline_setup(entity, lender_user)


@pytest.fixture
def screen(client, lender_user):
    client.force_login(lender_user)
    return client


def via_api(api, setup, name: str, content: bytes):
    response = api.post("/api/mobile-money/statements/", {"setup": setup.pk, "file": SimpleUploadedFile(name, content)},
                        format="multipart")
    return response.status_code, response.json()


def via_screen(screen, setup, name: str, content: bytes):
    response = screen.post(reverse("web:mm_statement_upload"), {"setup": setup.pk, "file": SimpleUploadedFile(name, content)})
    if response.status_code == 400:
        errors = response.context["form"].errors
        assert list(errors) == ["file"], errors
        assert escape(errors["file"][0]) in response.content.decode()
        return 400, {"file": errors["file"]}
    return response.status_code, response.content.decode()[:2000]


@pytest.fixture(params=["api", "screen"])
def upload(request, api, screen, setup):
    def send(name: str, content: bytes):
        if request.param == "api":
            return via_api(api, setup, name, content)
        return via_screen(screen, setup, name, content)
    return send


def refused(upload, name: str, content: bytes, *, seconds: float = 10, megabytes: int | None = None) -> str:
    """The refusal's message for the file field, the call having written nothing and taken at most
    `seconds`; with `megabytes`, traced (slower: the time is not checked then), it allocated at most
    that much beyond twice the file itself (the upload's own copies)."""
    if megabytes is not None:
        tracemalloc.start()
    started = time.monotonic()
    try:
        status, body = upload(name, content)
        peak = tracemalloc.get_traced_memory()[1] if megabytes is not None else 0
    finally:
        tracemalloc.stop()
    took = time.monotonic() - started
    assert status == 400, body
    if megabytes is None:
        assert took < seconds, f"{took:.1f} s"
    else:
        assert peak < len(content) * 2 + megabytes * 2**20, f"{peak / 2**20:.0f} MB"
    assert not StatementImport.objects.exists()
    assert not AuditEntry.objects.filter(action="mobilemoney.statement_uploaded").exists()
    message = " ".join(body["file"])
    assert message
    return message


_workbook = workbook


def _with_sheet(content: bytes, change) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(content))
    parts = {info.filename: source.read(info) for info in source.infolist()}
    parts["xl/worksheets/sheet1.xml"] = change(parts["xl/worksheets/sheet1.xml"])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        for name, body in parts.items():
            book.writestr(name, body)
    return out.getvalue()


def _claim_dimension(sheet: bytes, ref: str) -> bytes:
    return re.sub(rb'<dimension ref="[^"]*" ?/>', f'<dimension ref="{ref}"/>'.encode(), sheet)


def _add_rows(sheet: bytes, rows: bytes) -> bytes:
    return sheet.replace(b"</sheetData>", rows + b"</sheetData>")


PLAIN_BOOK = [HEADER, ["SA00000001", "2026-01-05 10:00:00", "Completed", 150]]


def test_a_workbook_that_claims_a_million_rows_of_16384_cells_is_refused_quickly(upload):
    # Five kilobytes whose <dimension> claims the whole sheet, with one cell in its last row: the
    # claim was believed and every row filled to 16,384 cells (minutes of one core for one upload).
    content = _with_sheet(_workbook(PLAIN_BOOK), lambda sheet: _add_rows(
        _claim_dimension(sheet, "A1:XFD1048576"), b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'))
    assert len(content) < 10_000
    assert "more than 210,000 rows" in refused(upload, "day.xlsx", content)


def test_rows_below_a_workbooks_stated_dimension_are_read_not_dropped(upload):
    # A writer that states "A1:D2" and writes more rows: those rows were silently left out.
    content = _with_sheet(_workbook(PLAIN_BOOK), lambda sheet: _add_rows(_claim_dimension(sheet, "A1:D2"), (
        b'<row r="3"><c r="A3" t="inlineStr"><is><t>SA00000002</t></is></c>'
        b'<c r="B3" t="inlineStr"><is><t>2026-01-05 11:00:00</t></is></c>'
        b'<c r="C3" t="inlineStr"><is><t>Completed</t></is></c><c r="D3"><v>75.5</v></c></row>')))
    status, body = upload("day.xlsx", content)
    assert status in (201, 302), body
    assert StatementImport.objects.get().lines == 2


def test_a_stray_cell_far_right_on_every_row_does_not_widen_the_rows(upload):
    stray = b"".join(b'<row r="%d"><c r="XFD%d"><v>1</v></c></row>' % (n, n) for n in range(3, 2003))
    content = _with_sheet(_workbook(PLAIN_BOOK), lambda sheet: _add_rows(_claim_dimension(sheet, "A1:XFD2002"), stray))
    status, body = upload("day.xlsx", content)
    assert status in (201, 302), body
    assert StatementImport.objects.get().lines == 1


def test_a_zip_bomb_workbook_is_refused_without_being_unpacked(upload):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("[Content_Types].xml", b"<Types/>")
        with book.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as part:
            chunk = b" " * 2**20
            for _ in range(statement.MAX_XLSX_UNPACKED_BYTES // len(chunk) + 1):
                part.write(chunk)
    bomb = buffer.getvalue()
    assert len(bomb) < 2**20
    assert "unpacks to more than 200 MB" in refused(upload, "day.xlsx", bomb, megabytes=16)


def test_one_line_of_two_megabytes_of_commas_is_refused_naming_it(upload):
    # One line of commas was as many empty cells in memory (a 39 MB line: about 900 MB).
    message = refused(upload, "day.csv", CSV_HEADER + b"," * (2 * 2**20) + b"\n" + CSV_LINE, megabytes=16)
    assert message.startswith("Line 2 is longer than 1,048,576 characters")


def test_a_preamble_row_wider_than_a_spreadsheet_is_refused(upload):
    assert "Line 1 has more than 16,384 columns" in refused(upload, "day.csv", b"," * 20_000 + b"\n" + CSV_HEADER + CSV_LINE)


def test_a_file_whose_header_is_not_near_the_top_is_refused(upload):
    message = refused(upload, "day.csv", b"preamble\n" * 150 + CSV_HEADER + CSV_LINE)
    assert "No header line with a 'Receipt No.' column was found in the first 100 lines" in message


def test_a_utf16_text_export_with_its_byte_order_mark_reads(upload):
    # Excel's "Unicode text": UTF-16 with a BOM, tab-separated. It was refused as holding NUL bytes.
    text = "Receipt No.\tCompletion Time\tTransaction Status\tPaid In\nSA00000001\t2026-01-05 10:00:00\tCompleted\t150.00\n"
    status, body = upload("day.csv", text.encode("utf-16"))
    assert status in (201, 302), body
    assert StatementImport.objects.get().lines == 1


def test_a_latin1_file_reads(upload):
    text = "Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info\n" \
           "SA00000001,2026-01-05 10:00:00,Completed,150.00,27821234567 - JOSÉ MÜLLER\n"
    status, body = upload("day.csv", text.encode("latin-1"))
    assert status in (201, 302), body
    assert StatementImport.objects.get().lines == 1


def test_nul_bytes_are_refused(upload):
    assert "NUL bytes" in refused(upload, "day.csv", CSV_HEADER + b"SA\x001,2026-01-05 10:00:00,Completed,1\n")


@pytest.mark.parametrize(("name", "content", "words"), [
    ("day.xlsx", CSV_HEADER + CSV_LINE, "not a readable XLSX workbook"),
    ("day.csv", _workbook(PLAIN_BOOK), "NUL bytes"),
    ("day.csv", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n", "No header line"),
    ("day.pdf", CSV_HEADER + CSV_LINE, "Upload a CSV or XLSX file"),
])
def test_a_file_that_is_not_what_its_name_says_is_refused(upload, name, content, words):
    assert words in refused(upload, name, content)


def test_formulas_are_read_as_text_never_evaluated(upload):
    # A CSV "formula" is the text it is; it is not a transaction amount.
    content = CSV_HEADER + b'=HYPERLINK("http://x.invalid"),2026-01-05 10:00:00,Completed,=1+1\n'
    status, body = upload("day.csv", content)
    assert status in (201, 302), body
    assert StatementImport.objects.get().lines == 1


@pytest.mark.parametrize("when", ["0001-01-01 00:00:00", "1899-12-31 23:59", "9999-12-31 23:59:59", "20991231235959"])
def test_a_completion_time_no_payment_can_have_is_the_lines_problem_and_the_rest_imports(api, setup, when,
                                                                                          django_capture_on_commit_callbacks):
    # Year 1 in Johannesburg is before the earliest UTC time: the whole import failed on saving it.
    content = CSV_HEADER + CSV_LINE + f"SA00000002,{when},Completed,75.50\n".encode()
    status, body = via_api(api, setup, "day.csv", content)
    assert status == 201, body
    assert body["counts"]["invalid"] == 1
    [bad] = [line for line in body["lines"] if line["kind"] == "invalid"]
    assert bad["line"] == 3 and f"Completion time '{when}'" in bad["note"]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/mobile-money/statements/{body['statement']['id']}/confirm/").status_code == 202
    done = api.get(f"/api/mobile-money/statements/{body['statement']['id']}/").json()
    assert (done["state"], done["invalid"], done["suspense"]) == ("done", 1, 1)


def test_an_upload_over_the_limit_is_a_413_in_json_before_it_is_read(api, setup, settings):
    settings.UPLOAD_MAX_BYTES = 2**20
    response = api.post("/api/mobile-money/statements/", {
        "setup": setup.pk, "file": SimpleUploadedFile("day.csv", CSV_HEADER + CSV_LINE * 30_000)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["detail"] == "The upload is larger than 1 MB: send a smaller file."
    assert not StatementImport.objects.exists()


def test_the_upload_limit_leaves_room_for_the_largest_statement():
    from django.conf import settings

    assert settings.UPLOAD_MAX_BYTES > statement.MAX_FILE_BYTES + 64 * 1024
