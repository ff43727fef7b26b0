"""The same TransID from two confirmation callbacks at the same moment posts one receipt: the
unique constraint on (setup, provider transaction id) decides, on PostgreSQL's real concurrency."""

from __future__ import annotations

import threading
import zoneinfo

import pytest
from django.db import connection, connections
from django.utils import timezone

from imali.loans.models import Receipt
from imali.mobilemoney.models import ProviderTransaction
from imali.mobilemoney.services import mpesa_confirm

from .conftest import mpesa_setup, open_loan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers, so two callbacks never race; this proves the PostgreSQL path")


def test_same_trans_id_from_two_callbacks_at_once_posts_one_receipt(entity, lender_user, mpesa_peer):
    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    loan = open_loan(entity, lender_user)
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone))
    body = {"TransactionType": "Pay Bill", "TransID": "RACE000001", "TransTime": now.strftime("%Y%m%d%H%M%S"), "TransAmount": "25.00",
            "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}", "MSISDN": "27821234567",
            "FirstName": "A", "MiddleName": "", "LastName": "B"}
    for round_ in range(5):
        body["TransID"] = f"RACE00000{round_}"
        barrier = threading.Barrier(2)
        results, failures = [], []

        def confirm(barrier=barrier, results=results, failures=failures):
            try:
                barrier.wait(5)
                results.append(mpesa_confirm(setup=setup, body=dict(body))[1])
            except Exception as exc:  # reported below: any error fails the test
                failures.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=confirm) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not failures, failures
        assert sorted(results) == [False, True]
        assert Receipt.objects.filter(external_reference=body["TransID"]).count() == 1
        assert ProviderTransaction.objects.filter(provider_transaction_id=body["TransID"]).count() == 1


def test_a_callback_recording_a_line_while_the_import_posts_it_wins_and_the_import_posts_the_rest(
        entity, lender_user, mpesa_peer):
    """A callback's payment row is uncommitted when the set-based import inserts the same
    transaction number: the import waits, is refused by the unique constraint, rolls the chunk back,
    reads it again and posts every other line — the callback's payment is posted once, by it."""
    from django.db import transaction

    from imali.mobilemoney.models import StatementImport
    from imali.mobilemoney.services import statement_confirm_run, statement_upload

    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    loan = open_loan(entity, lender_user)
    when = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y-%m-%d %H:%M:%S")
    lines = ["Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info,A/C No."]
    lines += [f"RC0000000{n},{when},Completed,5.00,27821234567 - A B,L{loan.pk}" for n in range(4)]
    preview = statement_upload(setup=setup, actor=lender_user, file_name="race.csv", content="\n".join(lines).encode(),
                               columns={})
    StatementImport.objects.filter(pk=preview.statement.pk).update(state="queued", confirmed_by=lender_user)
    holding, release, failures = threading.Event(), threading.Event(), []

    def callback_in_flight():
        try:
            with transaction.atomic():
                ProviderTransaction.objects.create(
                    entity=entity, setup=setup, provider_transaction_id="RC00000002", source="callback",
                    status="suspense", amount="5.00", transacted_at=timezone.now(), suspense_reason="being posted")
                holding.set()
                release.wait(10)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    caller = threading.Thread(target=callback_in_flight)
    caller.start()
    assert holding.wait(10)
    threading.Timer(1.0, release.set).start()  # commits while the import waits on its row
    done = statement_confirm_run(statement_id=preview.statement.pk)
    caller.join(15)
    assert not failures, failures
    assert done.state == "done", done.failure
    assert (done.posted, done.suspense, done.already_recorded) == (3, 0, 1)
    assert sorted(Receipt.objects.filter(loan=loan).values_list("external_reference", flat=True)) == \
        ["RC00000000", "RC00000001", "RC00000003"]
    assert ProviderTransaction.objects.get(provider_transaction_id="RC00000002").source == "callback"


def test_confirmations_for_two_loans_of_one_product_do_not_wait_for_each_other(entity, lender_user, mpesa_peer):
    """Every loan of a lender shares one of a few products (and the entity): a confirmation that
    locked any shared row would make every callback of the product wait for the one before it. One
    confirmation's transaction is held open while another, for another client's loan of the same
    product, must finish without waiting (lock_timeout turns a wait into an error)."""
    import datetime as dt

    from django.db import transaction

    from tests.loans.conftest import make_loan, make_product

    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    product = make_product(entity, name="Shared")
    disbursed = dt.date.today() - dt.timedelta(days=3)
    first, second = (make_loan(entity, user=lender_user, product=product, disbursed_on=disbursed) for _ in range(2))
    assert first.client_id != second.client_id and first.product_id == second.product_id
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y%m%d%H%M%S")

    def body(loan, trans_id):
        return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": now, "TransAmount": "25.00",
                "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}", "MSISDN": "27821234567",
                "FirstName": "A", "MiddleName": "", "LastName": "B"}

    holding, release, failures, done = threading.Event(), threading.Event(), [], []

    def hold_first():
        try:
            with transaction.atomic():
                mpesa_confirm(setup=setup, body=body(first, "HOLD000001"))
                holding.set()
                release.wait(20)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            holding.set()
            connections.close_all()

    def confirm_second():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '3s'")
            mpesa_confirm(setup=setup, body=body(second, "FREE000001"))
            done.append(True)
        except Exception as exc:  # a lock wait past the timeout lands here
            failures.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert holding.wait(20)
    other = threading.Thread(target=confirm_second)
    other.start()
    other.join(30)
    release.set()
    holder.join(30)
    assert not failures, failures
    assert done == [True]
    assert Receipt.objects.filter(external_reference__in=["HOLD000001", "FREE000001"]).count() == 2


def test_two_consumers_posting_at_once_post_each_stored_confirmation_once(entity, lender_user, mpesa_peer, settings):
    """Two consumers run the posting task at the same moment: SKIP LOCKED splits the stored
    payments between them (neither waits for the other's rows), and each payment becomes one
    receipt, one SMS."""
    from imali.messaging.models import OutboxMessage
    from imali.mobilemoney.received import payments_received_post

    settings.HUEY.immediate = False  # stored only: the two posters below do the consumer's work
    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    loans = [open_loan(entity, lender_user, cellphone=f"08212345{n:02d}") for n in range(4)]
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone)).strftime("%Y%m%d%H%M%S")
    for n in range(40):
        mpesa_confirm(setup=setup, body={
            "TransactionType": "Pay Bill", "TransID": f"TWO{n:07d}", "TransTime": now, "TransAmount": "3.00",
            "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loans[n % 4].pk}", "MSISDN": "27821234567",
            "FirstName": "A", "MiddleName": "", "LastName": "B"})
    assert ProviderTransaction.objects.filter(status="received").count() == 40
    barrier, counts, failures = threading.Barrier(2), [], []

    def poster():
        try:
            barrier.wait(5)
            counts.append(payments_received_post(batch=7))
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=poster) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert sum(counts) == 40
    assert ProviderTransaction.objects.filter(status="posted", confirmation_sms="queued").count() == 40
    assert Receipt.objects.filter(external_reference__startswith="TWO").count() == 40
    assert OutboxMessage.objects.filter(idempotency_key__contains=":TWO").count() == 40


def test_a_stored_confirmation_and_its_statement_line_post_once(entity, lender_user, mpesa_peer, settings):
    """The callback stored the payment (not yet posted) when the statement with the same
    transaction number is imported: the import counts it recorded already, the consumer posts it."""
    from imali.mobilemoney.models import StatementImport
    from imali.mobilemoney.received import payments_received_post
    from imali.mobilemoney.services import statement_confirm_run, statement_upload

    settings.HUEY.immediate = False
    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    loan = open_loan(entity, lender_user)
    local = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone))
    mpesa_confirm(setup=setup, body={
        "TransactionType": "Pay Bill", "TransID": "BOTH000001", "TransTime": local.strftime("%Y%m%d%H%M%S"),
        "TransAmount": "7.00", "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}",
        "MSISDN": "27821234567", "FirstName": "A", "MiddleName": "", "LastName": "B"})
    lines = ["Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info,A/C No.",
             f"BOTH000001,{local:%Y-%m-%d %H:%M:%S},Completed,7.00,27821234567 - A B,L{loan.pk}",
             f"BOTH000002,{local:%Y-%m-%d %H:%M:%S},Completed,8.00,27821234567 - A B,L{loan.pk}"]
    preview = statement_upload(setup=setup, actor=lender_user, file_name="both.csv", content="\n".join(lines).encode(),
                               columns={})
    StatementImport.objects.filter(pk=preview.statement.pk).update(state="queued", confirmed_by=lender_user)
    done = statement_confirm_run(statement_id=preview.statement.pk)
    assert (done.posted, done.already_recorded) == (1, 1)
    assert payments_received_post() == 1
    assert Receipt.objects.filter(external_reference="BOTH000001").count() == 1
    assert ProviderTransaction.objects.get(provider_transaction_id="BOTH000001").status == "posted"
