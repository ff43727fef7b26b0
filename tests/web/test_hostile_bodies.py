"""Hostile request bodies sent to the screens through the real stack: a form of 10,000 fields, a
field of 10 MB, a thousand files, an upload larger than any the app takes. Each is a clear 4xx page
saying what was wrong (Django's own says only "Bad Request (400)"), answered before the body is read
where its size is known, and nothing is written."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT
from django.urls import reverse

from imali.clients.models import Employer
from imali.mobilemoney.models import StatementImport
from imali.tenancy.rights import Right

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(login_as, entity):
    return login_as(entity, [Right.MANAGE_EMPLOYERS, Right.VIEW_CLIENTS, Right.CAPTURE_RECEIPTS])


def _page_problem(response) -> str:
    return response.content.decode()


def test_a_form_of_ten_thousand_fields_is_refused_saying_so(client, manager):
    body = {"name": "Acme", **{f"f{i}": "1" for i in range(10_000)}}
    response = client.post(reverse("web:employer_create"), body)
    assert response.status_code == 400
    assert "more than 1,000 fields" in _page_problem(response)
    assert not Employer.objects.exists()


def test_a_field_of_ten_megabytes_is_refused_saying_so(client, manager):
    response = client.post(reverse("web:employer_create"), {"name": "x" * (10 * 2**20)})
    assert response.status_code == 413
    assert "larger than 2.5 MB" in _page_problem(response)
    assert not Employer.objects.exists()


def test_a_multipart_field_of_ten_megabytes_is_refused_saying_so(client, manager):
    response = client.post(reverse("web:employer_create"), {"name": "x" * (10 * 2**20), "f": SimpleUploadedFile("a.txt", b"a")})
    assert response.status_code == 413
    assert "larger than 2.5 MB" in _page_problem(response)
    assert not Employer.objects.exists()


def test_a_thousand_files_are_refused_saying_so(client, manager):
    files = {f"file{i}": SimpleUploadedFile(f"{i}.csv", b"x") for i in range(1_000)}
    response = client.post(reverse("web:mm_statement_upload"), files)
    assert response.status_code == 400
    assert "more than 100 files" in _page_problem(response)
    assert not StatementImport.objects.exists()


class _Endless:
    """A multipart body whose one file part goes on for `size` bytes: read to its end it would be
    written to a temporary file of that size before any view saw it."""

    def __init__(self, size: int):
        self.head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"day.csv\"\r\n"
                     "Content-Type: text/csv\r\n\r\n").encode()
        self.left = size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        self.left -= size
        head, self.head = self.head[:size], self.head[size:]
        return head + b"x" * (size - len(head))

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def test_an_upload_larger_than_any_the_app_takes_is_refused_before_it_is_read(client, manager):
    claimed = 8 * 2**30
    stream = _Endless(claimed)
    started = time.monotonic()
    response = client.generic("POST", reverse("web:mm_statement_upload"), b"", CONTENT_LENGTH=str(claimed),
                              **{"wsgi.input": stream, "CONTENT_TYPE": MULTIPART_CONTENT})
    assert time.monotonic() - started < 5
    assert stream.left > claimed - 2**20  # at most a megabyte of it read
    assert response.status_code == 413
    assert "larger than 41 MB" in _page_problem(response)
    assert not StatementImport.objects.exists()


@pytest.mark.parametrize("text", ["{^" * 20_000, "Hi {^Client Name^} " * 2_000])
def test_template_text_that_was_slow_to_check_is_checked_in_linear_time(text):
    # "{^" after "{^" scanned to the text's end each (quadratic); so did the "field at the start"
    # check, once per field. 40,000 characters took seconds; each now takes milliseconds.
    from imali.messaging.templating import template_problems

    started = time.monotonic()
    template_problems(text * 5)
    assert time.monotonic() - started < 0.5


def test_a_pasted_document_as_a_template_is_refused_naming_the_text_before_it_is_previewed(client, login_as, entity):
    login_as(entity, [Right.MAXSMS_MESSAGE_SETUP])
    started = time.monotonic()
    response = client.post(reverse("web:messaging_template_edit") + "?type=birthday",
                           {"text": "{^" * 1_000_000, "preview": "1"})
    assert time.monotonic() - started < 5
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["text"]
    assert "at most 918 characters" in response.context["form"].errors["text"][0]
