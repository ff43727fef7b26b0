"""The data set: every column's value on the worked example of docs/marketing.md, the run kept
(who, when, filters, rows, duration) and run again, the screens (paged, sortable), exports streamed
with a bounded memory, and isolation from another entity."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from imali.clients.services import client_note_add, employer_create, paypoint_create
from imali.core.models import AuditEntry
from imali.loans.selectors import loan_settlement
from imali.loans.services import non_loan_debit_add
from imali.marketing.columns import KEYS, shown_columns
from imali.marketing.models import DataSet, DataSetRow
from imali.marketing.services import dataset_rerun, dataset_start
from imali.tenancy.rights import Right
from tests import factories

from .conftest import TODAY

pytestmark = pytest.mark.django_db


@pytest.fixture
def worked_example(entity, book, lender, no_consent_needed):
    """docs/marketing.md, "A worked example": Thandi Dlamini on 2026-03-10."""
    employer = employer_create(entity=entity, actor=None, data={
        "name": "Department of Health", "classification": "government", "economic_sector": "government",
        "telephone": "0123120000"})
    paypoint = paypoint_create(employer=employer, actor=None, number="PP014", name="Pretoria Central")
    seller = factories.make_user(entity=entity, username="sipho")
    seller.first_name, seller.last_name = "Sipho", "Nkosi"
    seller.save()
    client = book.borrower(
        title="Ms", full_names="Thandi Grace", name="Thandi", surname="Dlamini", id_number="9202204720083",
        date_of_birth=dt.date(1992, 2, 20), gender="F", home_phone="0113334444", work_phone="0123125555",
        email="thandi@example.org", tax_number="0123456789", original_client_number="OLD-77", salesperson=seller,
        marketing_info="Walk-in, asked about school fees", area="Soweto", salary="12000.00", bonus_month=12,
        payment_frequency="monthly", payment_day=25, credit_limit="3000.00", available_for_instalment="1500.00",
        budget_available_for_instalment="1350.50", payback_type="debit_order", employer=employer, paypoint=paypoint,
        employee_number="E1234", occupation="Nurse", other_employer_reference="PERSAL 998877",
        appointment_type="permanent", commencement_of_service=dt.date(2015, 4, 1),
        contract_expiry_date=dt.date(2030, 3, 31), physical_address="12 Vilakazi St, Orlando West",
        postal_address="PO Box 12, Orlando", historically_disadvantaged=True, insolvent=False, garnishee=False)
    loan = book.loan(client, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    first = book.dues(loan)[0]
    book.pay_instalments(loan, 1, on=first)
    non_loan_debit_add(entity=entity, actor=lender, client=client, description="Bank charge", amount="55.00",
                       debit_date=dt.date(2026, 3, 1))
    client_note_add(client=client, actor=lender, text="Asked for a top-up", is_display_note=True)
    client_note_add(client=client, actor=lender, text="Called about the February instalment")
    return client, loan


def run(entity, actor, **filters) -> DataSet:
    return dataset_start(actor=actor, entity=entity, filters=filters, as_of=TODAY, background=False)


def test_every_column_of_the_worked_example(entity, marketer, worked_example):
    client, loan = worked_example
    dataset = run(entity, marketer, calculate_settlement=True)
    assert dataset.state == "done" and dataset.row_count == 1
    row = DataSetRow.objects.get(dataset=dataset)
    got = {k: getattr(row, k) for k in KEYS}
    expected = {
        "home_branch": "Head Office", "client_number": client.number, "title": "Ms", "initials": "TG",
        "full_names": "Thandi Grace", "name": "Thandi", "surname": "Dlamini", "id_number": "9202204720083",
        "id_type": "South African ID", "gender": "Female", "home_phone": "+27113334444", "work_phone": "+27123125555",
        "cellphone": client.cellphone, "tax_number": "0123456789", "original_client_number": "OLD-77",
        "client_status": "Good", "salesperson": "Sipho Nkosi", "marketing_info": "Walk-in, asked about school fees",
        "area": "Soweto", "insolvent": False, "garnishee": False, "salary": Decimal("12000.00"), "bonus_month": 12,
        "payment_move_direction": "Move to the business day before", "payment_frequency": "Monthly", "payment_day": 25,
        "credit_limit": Decimal("3000.00"), "available_for_instalment": Decimal("1500.00"),
        "pct_available": Decimal("12.50"),  # 100 × 1,500.00 ÷ 12,000.00
        "payback_type": "Debit order", "email": "thandi@example.org", "bank_name": "Capitec",
        "bank_account_type": "Savings", "bank_account_number": "1234567890", "bank_branch_code": "470010",
        "employer_name": "Department of Health", "classification": "Government", "employee_number": "E1234",
        "paypoint_number": "PP014", "occupation": "Nurse", "other_employer_reference": "PERSAL 998877",
        "contract_expiry_date": dt.date(2030, 3, 31), "employer_telephone": "+27123120000",
        "commencement_of_service": dt.date(2015, 4, 1), "appointment_type": "Permanent",
        # The first instalment (905.01, due Friday 2026-01-23: the 25th was a Sunday) paid on its day.
        "last_receipt": dt.date(2026, 1, 23), "days_since_last_receipt": 46,
        "last_agreement_date": dt.date(2026, 1, 5), "last_agreement_product": "Short term 6", "days_since_last_loan": 64,
        "outstanding": Decimal("1809.99"),  # 905.00 (Feb, in arrears) + 904.99 (Mar)
        "next_date_due": dt.date(2026, 3, 25), "next_amount_due": Decimal("904.99"),
        "change_available": Decimal("0.00"), "non_loan_debt": Decimal("55.00"),
        "physical_address": "12 Vilakazi St, Orlando West", "postal_address": "PO Box 12, Orlando",
        "historically_disadvantaged": True, "budget_available_for_instalment": Decimal("1350.50"),
        "due_30": Decimal("904.99"), "due_60": Decimal("0.00"), "due_90": Decimal("0.00"), "due_120": Decimal("0.00"),
        "due_120_plus": Decimal("0.00"),
        "pct_of_all_capital_pd": Decimal("33.33"),  # 100 × 905.01 ÷ 2,715.00
        "last_note": "Called about the February instalment", "last_display_note": "Asked for a top-up",
        "settlement": loan_settlement(loan=loan, as_of=TODAY),
    }
    assert got == expected
    # The instalments and the total the example's figures come from.
    assert loan.total_repayable == Decimal("2715.00")


def test_settlement_only_when_asked(entity, marketer, worked_example):
    dataset = run(entity, marketer)
    assert DataSetRow.objects.get(dataset=dataset).settlement is None
    assert "settlement" not in [c.key for c in shown_columns(with_settlement=dataset.with_settlement)]


def test_a_run_is_kept_audited_and_can_run_again(entity, marketer, book, no_consent_needed):
    book.loan()
    book.borrower(area="Soweto")
    dataset = run(entity, marketer, area="Soweto")
    assert (dataset.created_by, dataset.filters, dataset.row_count, dataset.progress) == (marketer, {"area": "Soweto"}, 1, 1)
    assert dataset.duration_ms is not None and dataset.finished_at >= dataset.started_at
    assert AuditEntry.objects.filter(entity=entity, action="marketing.dataset_run", object_id=str(dataset.pk)).exists()
    again = dataset_rerun(actor=marketer, entity=entity, dataset_id=dataset.pk, background=False)
    assert again.pk != dataset.pk and again.rerun_of == dataset and again.filters == dataset.filters
    assert again.row_count == 1


def test_running_needs_the_right(entity, book, no_consent_needed):
    from django.core.exceptions import PermissionDenied

    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_LOGS])
    with pytest.raises(PermissionDenied):
        run(entity, clerk)


# --- screens ---------------------------------------------------------------------------------------
def test_the_screens_run_show_sort_and_page_a_data_set(client, entity, marketer, book, no_consent_needed,
                                                      django_capture_on_commit_callbacks, immediate_huey):
    for _ in range(3):
        book.loan()
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("web:marketing"), {"overdues": "include", "months_outstanding": "all"})
    dataset = DataSet.objects.get(entity=entity)
    assert response.status_code == 302 and response.url == reverse("web:marketing_dataset", kwargs={"dataset_id": dataset.pk})
    page = client.get(response.url)
    assert page.status_code == 200
    numbers = sorted(DataSetRow.objects.filter(dataset=dataset).values_list("client_number", flat=True))
    body = page.content.decode()
    assert "Months outstanding" in body and "All" in body
    assert "3</strong> clients in the data set" in body
    descending = client.get(response.url + "?sort=client_number&dir=desc").content.decode()
    rows = [line for line in descending.splitlines() if 'name="row"' in line]
    assert len(rows) == 3
    first_number = str(numbers[-1])
    assert f"<td class=\"num\">{first_number}</td>" in rows[0]


def test_bad_filters_on_the_screen_name_the_field(client, entity, marketer):
    client.force_login(marketer)
    response = client.post(reverse("web:marketing"), {"number_from": "9", "number_to": "2", "overdues": "include"})
    assert response.status_code == 400  # a refused form is a 400, as on the payment-stream screens
    assert response.context["form"].errors["number_to"] == ["The last client number is before the first."]
    assert not DataSet.objects.exists()
    # Sent by htmx: the same 400 with the form and its error (htmx is told to swap it: imali.js).
    htmx = client.post(reverse("web:marketing"), {"number_from": "9", "number_to": "2", "overdues": "include"},
                       HTTP_HX_REQUEST="true")
    assert htmx.status_code == 400 and "The last client number is before the first." in htmx.content.decode()
    assert client.get(reverse("web:marketing")).status_code == 200
    assert not DataSet.objects.exists()


def test_logs_list_every_run_for_the_view_logs_right(client, entity, marketer, book, no_consent_needed):
    book.borrower(area="Soweto")
    run(entity, marketer, area="Soweto")
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_LOGS])
    client.force_login(viewer)
    body = client.get(reverse("web:marketing_logs")).content.decode()
    assert "Client area: Soweto" in body and (marketer.get_full_name() or marketer.username) in body
    assert client.get(reverse("web:marketing")).status_code == 403


# --- exports ---------------------------------------------------------------------------------------
def test_csv_and_xlsx_exports_carry_every_column_and_are_audited(client, entity, marketer, worked_example):
    from openpyxl import load_workbook

    dataset = run(entity, marketer, calculate_settlement=True)
    client.force_login(marketer)
    url = reverse("web:marketing_dataset_export", kwargs={"dataset_id": dataset.pk})
    response = client.get(url + "?format=csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    header, row = list(csv.reader(io.StringIO(text)))
    assert header == [c.label for c in shown_columns(with_settlement=True)]
    assert row[header.index("Client surname")] == "Dlamini"
    assert row[header.index("Outstanding")] == "1809.99"
    assert row[header.index("Historically disadvantaged person")] == "Yes"
    response = client.get(url + "?format=xlsx")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    assert list(rows[0]) == header and rows[1][header.index("ID number")] == "9202204720083"
    # Each kind as what it is: money a number, a date a date, a flag in words, text as text.
    cells = dict(zip(header, rows[1], strict=True))
    assert Decimal(str(cells["Outstanding"])) == Decimal("1809.99") and cells["Client number"] == int(row[header.index("Client number")])
    assert cells["Historically disadvantaged person"] == "Yes" and cells["Client surname"] == "Dlamini"
    assert cells["Last agreement date"].date().isoformat() == row[header.index("Last agreement date")]
    assert AuditEntry.objects.filter(entity=entity, action="report.exported").count() == 2


def test_export_memory_stays_bounded_as_the_data_set_grows(entity, marketer, book, no_consent_needed, monkeypatch):
    """The export reads rows in chunks and writes as they come: the memory Python allocates for a
    data set of 1,200 rows is not much more than for 300 (a whole-list export would be 4×). The
    chunk and the XLSX file's in-memory part are made small here so that both sizes span many
    chunks (the product's are 2,000 rows and 8 MB; the benchmark measures those at scale)."""
    import tracemalloc

    from imali.marketing import export, selectors

    monkeypatch.setattr(selectors, "EXPORT_CHUNK_ROWS", 50)
    monkeypatch.setattr(export, "XLSX_SPOOL_BYTES", 16 * 1024)
    monkeypatch.setattr(export, "_PIECE_CHARS", 4 * 1024)

    client_row = book.borrower()
    dataset = run(entity, marketer)
    template = DataSetRow.objects.get(dataset=dataset)

    def grow(to: int) -> None:
        have = DataSetRow.objects.filter(dataset=dataset).count()
        extra = []
        for seq in range(have + 1, to + 1):
            template.pk, template.seq, template.client_id = None, seq, client_row.pk
            # Distinct text in every row, as a real book has (a spreadsheet keeps repeated strings once).
            template.id_number, template.full_names = f"{seq:013d}", f"Client {seq} Name"
            template.physical_address = f"{seq} Long Street, Cape Town"
            extra.append(DataSetRow(**{f.attname: getattr(template, f.attname) for f in DataSetRow._meta.concrete_fields}))
        DataSetRow.objects.bulk_create(extra, batch_size=1000)

    def peak(fmt: str) -> int:
        tracemalloc.start()
        if fmt == "csv":
            collections.deque(export.dataset_csv(dataset), maxlen=0)  # drained
        else:
            handle, size = export.dataset_xlsx(dataset)
            assert size > export.XLSX_SPOOL_BYTES  # the file went to disk: its size is not what is measured
            handle.close()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    grow(300)
    small = {fmt: peak(fmt) for fmt in ("csv", "xlsx")}
    grow(1200)
    large = {fmt: peak(fmt) for fmt in ("csv", "xlsx")}
    for fmt in ("csv", "xlsx"):
        assert large[fmt] < small[fmt] * 2, (fmt, small, large)


# --- isolation -------------------------------------------------------------------------------------
def test_another_entitys_clients_never_appear(entity, other_entity, marketer, book, no_consent_needed):
    from imali.tenancy.models import Entity

    mine = book.loan()
    factories.make_client(entity=other_entity)  # a client of the other entity, with consent not needed there too
    Entity.objects.filter(pk=other_entity.pk).update(marketing_consent_not_required=True)
    dataset = run(entity, marketer)
    assert set(DataSetRow.objects.filter(dataset=dataset).values_list("client_id", flat=True)) == {mine.client_id}


def test_another_entitys_data_set_is_not_found(client, entity, other_entity, marketer, no_consent_needed):
    admin = factories.make_admin(entity=other_entity)
    theirs = dataset_start(actor=admin, entity=other_entity, filters={}, background=False)
    client.force_login(marketer)
    for name in ("web:marketing_dataset", "web:marketing_dataset_progress", "web:marketing_dataset_export"):
        assert client.get(reverse(name, kwargs={"dataset_id": theirs.pk})).status_code == 404
    assert client.post(reverse("web:marketing_dataset_rerun", kwargs={"dataset_id": theirs.pk})).status_code == 404
    assert DataSet.objects.filter(entity=entity).count() == 0
