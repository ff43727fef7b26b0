"""The stream's printed documents as PDFs (ReportLab): promissory note, cancellation, client-credit
confirmation and card-issue receipt. The stream decides what may be printed and returns the
document's fields (adapters.base.Document); this draws them, with the entity's money format and
time zone."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from imali.core.formatting import format_money
from imali.core.localtime import datetime_label

from .adapters.base import Document

TITLES = {
    "promissory_note": "Promissory note and debit authority",
    "cancellation": "Cancellation of promissory note",
    "client_credit": "Client credit payment confirmation",
    "card_issue_receipt": "Acknowledgement of card and PIN mailer receipt",
}
STREAM_NAMES = {"naedo": "NAEDO", "eft": "EFT", "social_grant_eft": "Social Grant EFT"}
FIELD_LABELS = {"client": "Client", "clientNumber": "Client number", "idNumber": "ID number", "status": "Status",
                "stream": "Payment stream", "bank": "Bank", "account": "Account", "total": "Total", "card": "Card"}
NOTICES = {
    "promissory_note": "I authorise the lender to collect the instalments above from my account on their action dates "
                       "through the payment stream named.",
    "cancellation": "This promissory note is cancelled: none of its instalments will be presented for collection.",
    "client_credit": "This confirms the payment status at the payment stream only; it does not show that the receiving "
                     "bank has paid. A bank payment can be returned on the payment date or a few days later.",
    "card_issue_receipt": "I acknowledge receipt of the card and PIN mailer above, sealed and undamaged.",
}
SIGNED = ("promissory_note", "card_issue_receipt")


def _value(name: str, value: str, currency: str) -> str:
    if name == "total" or name == "amount":
        return format_money(Decimal(value), currency)
    if name == "stream":
        return STREAM_NAMES.get(value, value)
    if name == "status":
        return value.replace("_", " ").capitalize()
    return value


def render_pdf(document: Document, *, entity_name: str, currency: str, time_zone: str, printed_at: dt.datetime) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    pdf.setTitle(TITLES[document.kind])
    width, height = A4
    y = height - 20 * mm

    def line(text: str, *, size: int = 10, bold: bool = False, x: float = 20 * mm, step: float = 6 * mm) -> None:
        nonlocal y
        if y < 25 * mm:
            pdf.showPage()
            y = height - 20 * mm
        pdf.setFont("Helvetica-Bold" if bold else "Helvetica", size)
        pdf.drawString(x, y, text)
        y -= step

    line(entity_name, size=12, bold=True)
    line(TITLES[document.kind], size=14, bold=True, step=8 * mm)
    line(f"Stream reference: {document.reference}")
    line(f"Printed: {datetime_label(printed_at, time_zone)}", step=8 * mm)
    for name, value in document.fields.items():
        line(f"{FIELD_LABELS.get(name, name)}: {_value(name, value, currency)}")
    y -= 4 * mm
    if document.lines:
        if document.kind in ("promissory_note", "cancellation"):
            line("No.   Action date    Amount              Status", bold=True)
            for item in document.lines:
                line(f"{item['seq']:>3}   {item['actionDate']}     {format_money(Decimal(item['amount']), currency):>16}    "
                     f"{item['status'].capitalize()}")
        else:
            line("Paid to                                   Amount", bold=True)
            for item in document.lines:
                line(f"{item['to'][:40]:<40}  {format_money(Decimal(item['amount']), currency):>16}")
                line(f"    {item['note']}", size=8, step=5 * mm)
    y -= 6 * mm
    for chunk in _wrap(NOTICES[document.kind], 95):
        line(chunk, size=9, step=5 * mm)
    if document.kind in SIGNED:
        y -= 15 * mm
        line("Signature: ______________________________        Date: ______________")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return [*lines, current] if current else lines
