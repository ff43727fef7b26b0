"""The agreement PDF (ReportLab). `invariant=True` makes the bytes a function of the content
alone (no creation time, no random document id), so the stored SHA-256 identifies the document."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas


@dataclass(frozen=True)
class AgreementContent:
    title: str
    lender: str
    lender_details: str
    parties: Sequence[tuple[str, str]]
    terms: Sequence[tuple[str, str]]
    terms_digest: str
    signature_lines: Sequence[str]


def _wrap(text: str, width: int = 95) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return lines or [""]


def agreement_pdf(content: AgreementContent) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True, pageCompression=0)
    pdf.setTitle(content.title)
    pdf.setAuthor(content.lender)
    width, height = A4
    y = height - 25 * mm

    def line(text: str, *, font: str = "Helvetica", size: int = 10, gap: float = 5.5 * mm) -> None:
        nonlocal y
        if y < 25 * mm:
            pdf.showPage()
            y = height - 25 * mm
        pdf.setFont(font, size)
        pdf.drawString(20 * mm, y, text)
        y -= gap

    line(content.title, font="Helvetica-Bold", size=15, gap=8 * mm)
    line(content.lender, font="Helvetica-Bold", size=11)
    for text in _wrap(content.lender_details):
        line(text, size=9)
    y -= 3 * mm
    line("Parties", font="Helvetica-Bold", size=11)
    for label, value in content.parties:
        line(f"{label}: {value}")
    y -= 3 * mm
    line("Terms", font="Helvetica-Bold", size=11)
    for label, value in content.terms:
        line(f"{label}: {value}")
    line(f"Terms digest (SHA-256): {content.terms_digest}", size=8)
    y -= 3 * mm
    line("Signature", font="Helvetica-Bold", size=11)
    for text in content.signature_lines:
        for part in _wrap(text):
            line(part)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
