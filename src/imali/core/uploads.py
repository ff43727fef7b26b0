"""The one bound on a multipart body (a file upload), checked before any of it is read.

Django bounds a form's fields (DATA_UPLOAD_MAX_MEMORY_SIZE, files aside) but not its files: an upload
of any size is streamed to a temporary file, and only then does a view see that it is too large
(an 8 GB body filled the disk at about 100 MB a second). The body's length is known from its
header before it is read (Django reads no more than it), so a body over `UPLOAD_MAX_BYTES` — the
largest file the app takes, a mobile-money statement, plus room for the form around it — is
refused at once: a 413, on a page or in JSON."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class UploadTooLarge(RequestDataTooBig):
    def __init__(self, limit: int):
        super().__init__(f"The upload is larger than {limit / (1024 * 1024):.0f} MB: send a smaller file.")


class BoundedUploadHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: refuses the body, or lets the next handlers have it."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.UPLOAD_MAX_BYTES:
            raise UploadTooLarge(settings.UPLOAD_MAX_BYTES)

    def receive_data_chunk(self, raw_data, start):
        return raw_data

    def file_complete(self, file_size):
        return None
