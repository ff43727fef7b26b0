"""The client statement as PDF (ReportLab): every disbursed loan with its instalments, receipts and
change paid back, the client's non-loan debits, and the client's figures from the snapshot selector."""

from __future__ import annotations

import datetime as dt
import io
from collections import defaultdict

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from imali.clients.models import Client
from imali.core.formatting import format_money
from imali.tenancy.models import Entity

from . import rules, selectors
from .models import DISBURSED_STATUSES, ChangeRefund, Instalment, Loan, NonLoanDebit, Receipt


def _money(value) -> str:
    return format_money(value)


def _table(rows: list[list[str]], widths: list[float]) -> Table:
    table = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8ecef")),
        ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b0b8bf")),
    ]))
    return table


def client_statement_pdf(*, entity: Entity, client: Client, as_of: dt.date) -> bytes:
    styles = getSampleStyleSheet()
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=f"Statement {client.number}", author=entity.name,
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm)
    story = [
        Paragraph(f"{entity.name} — statement of account", styles["Title"]),
        Paragraph(f"Client {client.number}: {client.display_name}, ID {client.id_number}. "
                  f"Statement date {as_of:%Y-%m-%d}. Amounts in {entity.currency}. "
                  f"Status {client.get_status_display()}, new loans "
                  f"{'allowed' if client.new_loans_allowed else 'not allowed'}.", styles["Normal"]),
        Spacer(1, 4 * mm),
        _table([
            ["Outstanding", "Arrears", "Next due", "Next amount", "Settlement"],
            [_money(figures.outstanding), _money(figures.arrears_amount),
             figures.next_due_date.isoformat() if figures.next_due_date else "—", _money(figures.next_amount_due),
             _money(figures.settlement)],
        ], [36, 36, 36, 36, 36]),
        Spacer(1, 2 * mm),
        _table([
            ["Change available", "Non-loan debt"],
            [_money(figures.change_available), _money(figures.non_loan_debt)],
        ], [36, 36]),
    ]
    loans = list(Loan.objects.filter(entity=entity, client=client, status__in=DISBURSED_STATUSES)
                 .select_related("product").order_by("disbursed_on", "pk"))
    # Three reads for all the loans together (not three per loan), grouped here by loan.
    loan_ids = [loan.pk for loan in loans]
    schedules, receipts_of, refunds_of = defaultdict(list), defaultdict(list), defaultdict(list)
    for i in Instalment.objects.filter(loan_id__in=loan_ids).order_by("loan_id", "seq"):
        schedules[i.loan_id].append(i)
    for r in Receipt.objects.filter(entity=entity, loan_id__in=loan_ids).order_by("value_date", "pk"):
        receipts_of[r.loan_id].append(r)
    for f in ChangeRefund.objects.filter(entity=entity, loan_id__in=loan_ids).order_by("paid_on", "pk"):
        refunds_of[f.loan_id].append(f)
    for loan in loans:
        story += [Spacer(1, 6 * mm), Paragraph(
            f"Loan {loan.pk} — {loan.product.name}, {loan.get_status_display()}, agreement {loan.disbursed_on:%Y-%m-%d}, "
            f"principal {_money(loan.principal)}, total repayable {_money(loan.total_repayable)}", styles["Heading4"])]
        rows = [["#", "Due", "Capital", "Interest", "Fees", "VAT", "Amount", "Paid", "Status"]]
        for i in schedules[loan.pk]:
            state = rules.instalment_status(amount=i.amount, paid=i.paid, due_date=i.due_date, as_of=as_of)
            rows.append([str(i.seq), i.due_date.isoformat(), _money(i.capital), _money(i.interest), _money(i.fee),
                         _money(i.vat), _money(i.amount), _money(i.paid),
                         "Written off" if state != rules.InstalmentStatus.PAID and not i.open else state.label])
        story.append(_table(rows, [8, 20, 21, 20, 18, 16, 22, 22, 33]))
        receipts = receipts_of[loan.pk]
        if receipts:
            rows = [["Date", "Type", "Reference", "Amount", "Change", "State"]]
            for r in receipts:
                rows.append([r.value_date.isoformat(), r.get_payback_type_display(), r.external_reference or "—",
                             _money(r.amount), _money(r.change), "Reversed" if r.is_reversed else "Posted"])
            story += [Spacer(1, 2 * mm), _table(rows, [24, 30, 44, 28, 26, 24])]
        refunds = refunds_of[loan.pk]
        if refunds:
            rows = [["Change paid back", "Method", "Reference", "Amount", "State"]]
            for f in refunds:
                rows.append([f.paid_on.isoformat(), f.get_method_display(), f.reference or "—", _money(f.amount),
                             "Reversed" if f.is_reversed else "Paid"])
            story += [Spacer(1, 2 * mm), _table(rows, [30, 30, 44, 28, 24])]
    debits = NonLoanDebit.objects.filter(entity=entity, client=client).order_by("debit_date", "pk")
    if debits:
        rows = [["Date", "Non-loan debit", "Amount", "Settled"]]
        for d in debits:
            rows.append([d.debit_date.isoformat(), d.description[:60], _money(d.amount),
                         d.settled_on.isoformat() if d.settled_on else "Open"])
        story += [Spacer(1, 6 * mm), Paragraph("Non-loan debits", styles["Heading4"]), _table(rows, [24, 100, 28, 28])]
    doc.build(story)
    return buffer.getvalue()
