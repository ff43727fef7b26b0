"""verify_agreement <signature id> <pdf path>."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from imali.signing import services

pytestmark = pytest.mark.django_db


def test_verify_agreement_says_whether_the_pdf_is_the_signed_one(tmp_path, capsys, setup, officer, application):
    signature = services.document_hand_sign(actor=officer, entity=setup.entity, document=services.Document(loan=application))
    good = tmp_path / "good.pdf"
    good.write_bytes(bytes(signature.document_pdf))
    call_command("verify_agreement", str(signature.pk), str(good))
    assert capsys.readouterr().out.startswith(f"MATCH: {good} is the document signed for loan {application.pk}")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(signature.document_pdf).replace(b"3,000.00", b"9,000.00"))
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_agreement", str(signature.pk), str(bad))
    assert exit_info.value.code == 1
    assert capsys.readouterr().out.startswith(f"NO MATCH: {bad} is not the signed document")
    with pytest.raises(CommandError):
        call_command("verify_agreement", "999999", str(good))
    with pytest.raises(CommandError):
        call_command("verify_agreement", str(signature.pk), str(tmp_path / "missing.pdf"))
