"""verify_agreement <signature id> <pdf path>: is this PDF, byte for byte, the signed document?

Exit status 0 when it is, 1 when it is not (so scripts can rely on it)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from imali.signing import security
from imali.signing.models import Signature


class Command(BaseCommand):
    help = "Recompute a PDF's SHA-256 and say whether it is the document that was signed."

    def add_arguments(self, parser):
        parser.add_argument("signature_id", type=int)
        parser.add_argument("pdf_path", type=Path)

    def handle(self, *args, signature_id: int, pdf_path: Path, **options):
        signature = Signature.objects.filter(pk=signature_id).select_related("entity").first()
        if signature is None:
            raise CommandError(f"No signature {signature_id}.")
        try:
            data = pdf_path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {pdf_path}: {exc.strerror}.") from None
        computed = security.document_sha256(data)
        what = f"mandate {signature.mandate_id}" if signature.mandate_id else f"loan {signature.loan_id}"
        if security.digests_equal(computed, signature.document_sha256):
            self.stdout.write(f"MATCH: {pdf_path} is the document signed for {what} on "
                              f"{signature.signed_at:%Y-%m-%d %H:%M:%S %Z} (SHA-256 {computed}).")
            return
        self.stdout.write(f"NO MATCH: {pdf_path} is not the signed document of {what}: SHA-256 {computed}, "
                          f"signed document {signature.document_sha256}.")
        raise SystemExit(1)
