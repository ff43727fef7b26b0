"""Statement import: CSV and XLSX, the default M-PESA portal columns and a custom mapping, a
preview that names each line's fate with its line number, the confirm that posts each payment
once (also against the real-time notifications), and a re-import that adds nothing."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from imali.core.models import AuditEntry
from imali.loans.models import Receipt
from imali.mobilemoney.models import ProviderTransaction, StatementImport
from imali.mobilemoney.services import (
    PaymentIn,
    payment_in_record,
    statement_confirm,
    statement_confirms_resume,
    statement_upload,
)

from .conftest import mpesa_setup, open_loan

pytestmark = pytest.mark.django_db

HEADER = ("Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,Withdrawn,Balance,"
          "Reason Type,Other Party Info,A/C No.")


def csv_statement(loan, when: str) -> bytes:
    rows = [
        "Organisation portal export,,,,,,,,,,",  # the portal's preamble above the header
        HEADER,
        f"SA00000001,{when},{when},Pay Bill from 27821234567,Completed,150.00,,1000.00,Pay Bill,27821234567 - JANE DOE,L{loan.pk}",
        f"SA00000002,{when},{when},Pay Bill,Completed,75.50,,1075.50,Pay Bill,27829999999 - JOHN X,UNKNOWN",
        f"SA00000003,{when},{when},Charge,Completed,,10.00,1065.50,Charge,,",
        f"SA00000004,not a time,,Pay Bill,Completed,20.00,,,Pay Bill,27821234567 - JANE DOE,L{loan.pk}",
        f"SA00000005,{when},{when},Pay Bill,Completed,abc,,,Pay Bill,27821234567 - JANE DOE,L{loan.pk}",
        f"SA00000001,{when},{when},Pay Bill,Completed,150.00,,,Pay Bill,27821234567 - JANE DOE,L{loan.pk}",
        f"SA00000006,{when},{when},Pay Bill,Completed,40.00,,,Pay Bill,27821234567 - JANE DOE,{loan.client.number}",
    ]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def setup(entity, lender_user, mpesa_peer):
    return mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:8000/")


@pytest.fixture
def confirm(django_capture_on_commit_callbacks):
    """Confirm a statement as the screen does; its task runs when the confirm commits (the
    consumer's work inline): the finished import is returned."""
    def run(statement, actor):
        with django_capture_on_commit_callbacks(execute=True):
            started = statement_confirm(statement=statement, actor=actor)
        assert started.state == "queued"
        return StatementImport.objects.get(pk=statement.pk)
    return run


def now_text(entity):
    import zoneinfo

    return timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y-%m-%d %H:%M:%S")


def test_preview_names_each_lines_fate_with_its_line_number(entity, lender_user, setup):
    loan = open_loan(entity, lender_user)
    preview = statement_upload(setup=setup, actor=lender_user, file_name="day.csv", content=csv_statement(loan, now_text(entity)), columns={})
    by_line = {line.number: line for line in preview.lines}
    assert by_line[3].kind == "matched" and by_line[3].loan_id == loan.pk
    assert by_line[4].kind == "unmatched"
    assert by_line[5].kind == "skipped"
    assert by_line[6].kind == "invalid" and "Completion time" in by_line[6].note
    assert by_line[7].kind == "invalid" and "Paid in 'abc'" in by_line[7].note
    assert by_line[8].kind == "recorded" and "line 3" in by_line[8].note
    assert by_line[9].kind == "matched"
    assert preview.counts == {"matched": 2, "unmatched": 1, "recorded": 1, "invalid": 2, "skipped": 1}
    assert not Receipt.objects.exists()  # a preview posts nothing


def test_confirm_posts_once_and_reimport_adds_nothing(entity, lender_user, setup, confirm):
    loan = open_loan(entity, lender_user)
    content = csv_statement(loan, now_text(entity))
    # SA00000006 arrived by real-time notification first: the statement line must not post it again.
    payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="SA00000006", amount=Decimal("40.00"), transacted_at=timezone.now(),
        account_reference=str(loan.client.number)))
    first = statement_upload(setup=setup, actor=lender_user, file_name="day.csv", content=content, columns={})
    assert first.counts["recorded"] == 2
    done = confirm(first.statement, lender_user)
    assert done.state == "done" and done.progress == done.lines == 7 and done.content in (b"", memoryview(b""))
    assert (done.posted, done.suspense, done.already_recorded, done.invalid, done.skipped) == (1, 1, 2, 2, 1)
    assert Receipt.objects.filter(loan=loan).count() == 2
    assert Receipt.objects.get(external_reference="SA00000001").amount == Decimal("150.00")
    assert ProviderTransaction.objects.get(provider_transaction_id="SA00000002").status == "suspense"
    assert AuditEntry.objects.filter(action="mobilemoney.statement_imported", subject="day.csv").exists()
    with pytest.raises(ValidationError):
        statement_confirm(statement=first.statement, actor=lender_user)
    again = statement_upload(setup=setup, actor=lender_user, file_name="day-again.csv", content=content, columns={})
    assert again.counts["matched"] == 0 and again.counts["unmatched"] == 0
    redone = confirm(again.statement, lender_user)
    assert redone.posted == 0 and redone.suspense == 0
    assert Receipt.objects.count() == 2 and ProviderTransaction.objects.count() == 3


def test_xlsx_with_a_custom_column_mapping(entity, lender_user, setup, confirm):
    from openpyxl import Workbook

    loan = open_loan(entity, lender_user)
    book = Workbook()
    sheet = book.active
    sheet.append(["Ref", "Date", "Amount", "Payer", "Account"])
    sheet.append(["XL00000001", timezone.now().astimezone().replace(tzinfo=None), 12.3, "27821234567 - A B", f"L{loan.pk}"])
    buffer = io.BytesIO()
    book.save(buffer)
    columns = {"transaction_id": "Ref", "completed_at": "Date", "paid_in": "Amount", "other_party": "Payer",
               "account_reference": "Account", "status": "-"}
    preview = statement_upload(setup=setup, actor=lender_user, file_name="day.xlsx", content=buffer.getvalue(), columns=columns)
    assert preview.counts["matched"] == 1, [(line.number, line.kind, line.note) for line in preview.lines]
    setup.refresh_from_db()
    assert setup.statement_columns["transaction_id"] == "Ref"  # remembered for the next upload
    confirm(preview.statement, lender_user)
    assert Receipt.objects.get(external_reference="XL00000001").amount == Decimal("12.30")


def test_unreadable_files_are_refused_naming_the_problem(entity, lender_user, setup):
    with pytest.raises(ValidationError, match="No header line"):
        statement_upload(setup=setup, actor=lender_user, file_name="x.csv", content=b"a,b\n1,2\n", columns={})
    with pytest.raises(ValidationError, match="Amount paid in"):
        statement_upload(setup=setup, actor=lender_user, file_name="x.csv", content=b"x\nReceipt No.,Completion Time\n", columns={})
    with pytest.raises(ValidationError, match="XLSX"):
        statement_upload(setup=setup, actor=lender_user, file_name="x.xlsx", content=b"not a zip", columns={})
    with pytest.raises(ValidationError, match="CSV or XLSX"):
        statement_upload(setup=setup, actor=lender_user, file_name="x.pdf", content=b"%PDF", columns={})
    assert not StatementImport.objects.exists()


def test_upload_preview_confirm_through_the_screens(client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    client.force_login(lender_user)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("day.csv", csv_statement(loan, now_text(entity)), content_type="text/csv")
    response = client.post(reverse("web:mm_statement_upload"), {"setup": setup.pk, "file": upload,
                                                               "transaction_id": "Receipt No."})
    assert response.status_code == 302, response.content.decode()[:3000]
    page = client.get(response["Location"]).content.decode()
    assert "Matched to a loan: 2" in page and "Completion time &#x27;not a time&#x27;" in page
    statement = StatementImport.objects.get()
    with django_capture_on_commit_callbacks(execute=False) as started:
        done = client.post(reverse("web:mm_statement_confirm", kwargs={"statementimport_id": statement.pk}))
    assert done.status_code == 302 and len(started) == 1
    # The request only started the import: nothing is posted until the consumer runs it.
    assert not Receipt.objects.exists()
    waiting = client.get(done["Location"]).content.decode()
    assert "Waiting to start" in waiting and "hx-get" in waiting and "in the background" in waiting
    started[0]()  # the consumer takes the task
    assert Receipt.objects.filter(loan=loan).count() == 2
    progress = client.get(reverse("web:mm_statement_progress", kwargs={"statementimport_id": statement.pk})).content.decode()
    assert 'id="import-done"' in progress and "hx-get" not in progress and "Receipts posted" in progress
    assert "Imported" in client.get(reverse("web:mm_statement_upload")).content.decode()


def test_the_upload_page_lists_imports_without_loading_their_files(client, entity, lender_user, setup,
                                                                    django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    loan = open_loan(entity, lender_user)
    for n in range(3):
        statement_upload(setup=setup, actor=lender_user, file_name=f"day{n}.csv", content=csv_statement(loan, now_text(entity)),
                         columns={})
    client.force_login(lender_user)
    with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(12):
        page = client.get(reverse("web:mm_statement_upload"))
    assert page.status_code == 200 and "day2.csv" in page.content.decode()
    listing = [q["sql"] for q in queries.captured_queries if "mobilemoney_statementimport" in q["sql"]]
    assert listing and not any('"content"' in sql for sql in listing), listing


def test_an_import_whose_task_was_lost_is_resumed(entity, lender_user, setup, consumer_inline,
                                                   django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    preview = statement_upload(setup=setup, actor=lender_user, file_name="day.csv", content=csv_statement(loan, now_text(entity)),
                               columns={})
    with django_capture_on_commit_callbacks(execute=False):  # the task never reaches the consumer
        statement_confirm(statement=preview.statement, actor=lender_user)
    assert statement_confirms_resume() == 0  # not yet: it may still be on its way
    StatementImport.objects.filter(pk=preview.statement.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=3))
    assert statement_confirms_resume() == 1
    done = StatementImport.objects.get(pk=preview.statement.pk)
    assert done.state == "done" and done.posted == 2 and Receipt.objects.filter(loan=loan).count() == 2
    assert statement_confirms_resume() == 0


def test_a_running_import_cannot_be_confirmed_twice(entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    preview = statement_upload(setup=setup, actor=lender_user, file_name="day.csv", content=csv_statement(loan, now_text(entity)),
                               columns={})
    with django_capture_on_commit_callbacks(execute=False):
        statement_confirm(statement=preview.statement, actor=lender_user)
    with pytest.raises(ValidationError, match="being imported already"):
        statement_confirm(statement=preview.statement, actor=lender_user)


def _book(loan):
    """What the payments did to a loan, in terms that do not depend on ids."""
    from imali.loans.models import Instalment, Loan

    loan = Loan.objects.get(pk=loan.pk)
    receipts = [(r.amount, r.allocated, r.change, r.value_date, r.loan_status_before,
                 sorted((a.instalment.seq, a.fee, a.vat, a.interest, a.capital) for a in r.allocations.all()))
                for r in Receipt.objects.filter(loan=loan).order_by("pk")]
    instalments = list(Instalment.objects.filter(loan=loan).order_by("seq").values_list(
        "seq", "fee_paid", "vat_paid", "interest_paid", "capital_paid", "paid", "paid_on"))
    return receipts, instalments, (loan.status, loan.paid_up_on, loan.received_total, loan.change_total, loan.last_receipt_on)


def test_set_based_posting_lands_exactly_as_payments_one_by_one(entity, lender_user, setup, confirm,
                                                                django_capture_on_commit_callbacks):
    """Twin loans: a statement pays one, the same payments recorded one at a time (as callbacks are)
    pay the other — the receipts, allocations, instalments, loan and suspense reasons must agree."""
    import zoneinfo

    from imali.messaging.models import OutboxMessage

    twins = [open_loan(entity, lender_user, principal="1000", cellphone=phone) for phone in ("0821111111", "0822222222")]
    from imali.loans.models import Instalment

    balance = sum((i.amount - i.paid for i in Instalment.objects.filter(loan=twins[0], open=True)), Decimal("0"))
    amounts = [Decimal("100.00"), Decimal("250.55"), Decimal("999999.00"), balance - Decimal("350.55"), Decimal("10.00")]
    when = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone))
    rows = [HEADER]
    for n, amount in enumerate(amounts):
        reference = f"L{twins[0].pk}" if n % 2 == 0 else str(twins[0].client.number)  # loan number and client number
        rows.append(f"ST{n:08d},{when:%Y-%m-%d %H:%M:%S},,Pay Bill,Completed,{amount},,,Pay Bill,27821111111 - A,{reference}")
    preview = statement_upload(setup=setup, actor=lender_user, file_name="twin.csv", content="\n".join(rows).encode(), columns={})
    done = confirm(preview.statement, lender_user)
    for n, amount in enumerate(amounts):
        reference = f"L{twins[1].pk}" if n % 2 == 0 else str(twins[1].client.number)
        with django_capture_on_commit_callbacks(execute=True):
            payment_in_record(setup=setup, source="callback", payment=PaymentIn(
                provider_transaction_id=f"CB{n:08d}", amount=amount, transacted_at=when, account_reference=reference))
    assert _book(twins[0]) == _book(twins[1])
    assert _book(twins[0])[2][0] == "paid_up"
    by_statement = list(ProviderTransaction.objects.filter(statement=done).order_by("provider_transaction_id")
                        .values_list("status", "suspense_reason"))
    one_by_one = list(ProviderTransaction.objects.filter(provider_transaction_id__startswith="CB").order_by("provider_transaction_id")
                      .values_list("status", "suspense_reason"))
    import re

    assert [(s, re.sub(r"[Ll]oan \d+", "loan #", r)) for s, r in by_statement] == \
        [(s, re.sub(r"[Ll]oan \d+", "loan #", r)) for s, r in one_by_one]
    assert (done.posted, done.suspense) == (3, 2)
    # Each receipt posted by the import is confirmed to the client once, after the import.
    for twin in twins:
        assert OutboxMessage.objects.filter(client=twin.client, message_type="payment_received").count() == 3
    assert not ProviderTransaction.objects.filter(confirmation_sms="pending").exists()


def test_an_import_in_several_chunks_posts_each_line_once_traced_to_its_line_and_audited_per_chunk(
        entity, lender_user, setup, confirm, monkeypatch):
    """Chunks of two lines: a loan's lines are kept in one chunk and posted in file order; each
    chunk's transaction carries one audit entry with its lines and counts (no entry per receipt),
    the import one with the totals; every receipt is traced to its provider transaction and the
    import; the money lands to the cent."""
    import zoneinfo

    from imali.loans.models import Instalment, Loan
    from imali.mobilemoney import bulk

    monkeypatch.setattr(bulk, "CHUNK_LINES", 2)
    loan = open_loan(entity, lender_user, cellphone="")
    other = open_loan(entity, lender_user, cellphone="0823334444")
    when = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y-%m-%d %H:%M:%S")
    amounts = ["0.01", "33.33", "100.10", "7.77", "12.00"]
    rows = [HEADER]
    for n, amount in enumerate(amounts):
        rows.append(f"CH{n:08d},{when},,Pay Bill,Completed,{amount},,,Pay Bill,27821111111 - A,L{loan.pk}")
    rows.append(f"CH00000099,{when},,Pay Bill,Completed,5.00,,,Pay Bill,27821111111 - A,NOBODY")
    rows.append(f"CH00000098,{when},,Pay Bill,Completed,6.00,,,Pay Bill,27821111111 - A,L{other.pk}")
    preview = statement_upload(setup=setup, actor=lender_user, file_name="chunks.csv", content="\n".join(rows).encode(),
                               columns={})
    done = confirm(preview.statement, lender_user)
    assert (done.posted, done.suspense, done.already_recorded) == (6, 1, 0)
    total = sum(Decimal(a) for a in amounts)
    loan = Loan.objects.get(pk=loan.pk)
    assert loan.received_total + loan.change_total == total
    paid = sum((i.paid for i in Instalment.objects.filter(loan=loan)), Decimal("0"))
    assert paid == loan.received_total
    for txn in ProviderTransaction.objects.filter(statement=done, status="posted"):
        assert txn.receipt.external_reference == txn.provider_transaction_id and txn.receipt.loan_id == txn.loan_id
        assert txn.receipt.captured_by == lender_user
    assert ProviderTransaction.objects.get(provider_transaction_id="CH00000099").suspense_reason
    # The SMS is due only to the client with a cellphone (sent after the import).
    assert ProviderTransaction.objects.get(provider_transaction_id="CH00000098").confirmation_sms == "queued"
    assert ProviderTransaction.objects.get(provider_transaction_id="CH00000000").confirmation_sms == ""
    parts = list(AuditEntry.objects.filter(action="mobilemoney.statement_imported", after__part__isnull=False,
                                           object_id=str(done.pk)).order_by("pk").values_list("subject", "after"))
    # The loan's five lines stay together (one chunk, over the size of two), in file order.
    assert [subject for subject, _ in parts] == ["chunks.csv part 1", "chunks.csv part 2"]
    assert [(a["lines"], a["first_line"], a["last_line"], a["posted"], a["suspense"]) for _, a in parts] == \
        [(5, 2, 6, 5, 0), (2, 7, 8, 1, 1)]
    assert list(Receipt.objects.filter(loan=loan).order_by("pk").values_list("external_reference", flat=True)) == \
        [f"CH{n:08d}" for n in range(5)]
    assert AuditEntry.objects.get(action="mobilemoney.statement_imported", subject="chunks.csv").after["posted"] == 6


def test_chunks_keep_every_loan_and_every_client_s_loans_together_in_file_order():
    """A client number may land on any of the client's loans: its lines and the lines naming those
    loans are one group; groups fill chunks of about the size asked, each chunk in file order."""
    from imali.mobilemoney.bulk import loan_chunks
    from imali.mobilemoney.statement import Line

    picks = {"A1": [1], "B1": [2], "C1": [3, 4], "A2": [1], "D1": [4], "X1": [], "B2": [2], "X2": [], "E1": [5]}
    lines = [Line(n, tid) for n, tid in enumerate(picks, start=2)]
    candidates = {tid: (found, "" if found else "no loan") for tid, found in picks.items()}
    chunks = loan_chunks(lines, candidates, 3)
    assert [[line.transaction_id for line in chunk] for chunk in chunks] == [
        ["A1", "A2"], ["B1", "B2"], ["C1", "D1", "X1"], ["X2", "E1"]]
    assert [line.transaction_id for line in loan_chunks(lines, candidates, 1)[1]] == ["B1", "B2"]
    assert sorted(line.number for chunk in chunks for line in chunk) == list(range(2, 11))
