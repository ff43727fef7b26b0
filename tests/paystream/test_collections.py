"""Collections into the loan book: the stream's results feed (over loopback HTTP from the peer)
posts receipts exactly once, records declines with the bank's reason, and reverses a receipt
when the collection comes back unpaid."""

from __future__ import annotations

import datetime as dt

from imali.loans.models import Receipt
from imali.paystream import services
from imali.paystream.adapters.base import CollectionOutcome
from imali.paystream.models import (
    CollectionKind,
    CollectionResult,
    NoteInstalmentStatus,
    StreamSettings,
)

from .conftest import active_loan_with_note


def _due(note) -> list:
    return [i for i in note.instalments.all() if i.action_date <= dt.date.today()]


def test_due_instalments_are_collected_and_posted_once(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    due = _due(note)
    assert due, "the loan was paid out long enough ago for an instalment to be due"
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert summary.collected == len(due) and summary.problems == 0
    receipts = Receipt.objects.filter(loan=loan)
    assert receipts.count() == len(due)
    assert {r.payback_type for r in receipts} == {"naedo"}
    assert set(note.instalments.filter(pk__in=[i.pk for i in due]).values_list("status", flat=True)) == {NoteInstalmentStatus.COLLECTED}
    # Fetching again, and even re-reading the whole feed from the start, posts nothing twice.
    assert services.collections_fetch(entity=ps_entity, actor=clerk).collected == 0
    StreamSettings.objects.filter(entity=ps_entity).update(collections_after=0)
    again = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert (again.collected, again.repeated) == (0, len(due))
    assert Receipt.objects.filter(loan=loan).count() == len(due)


def test_decline_keeps_reason_date_and_amount(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    first = _due(note)[0]
    peer.preset_outcome(note.reference, first.seq, "failed", "Insufficient Funds")
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert summary.declined == 1
    decline = CollectionResult.objects.get(kind=CollectionKind.FAILED)
    assert (decline.reason, decline.result_date, decline.amount) == ("Insufficient Funds", first.action_date, first.amount)
    first.refresh_from_db()
    assert first.status == NoteInstalmentStatus.FAILED
    assert not Receipt.objects.filter(external_reference=decline.reference).exists()


def test_unpaid_days_later_reverses_the_receipt(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    services.collections_fetch(entity=ps_entity, actor=clerk)
    collected = CollectionResult.objects.filter(kind=CollectionKind.COLLECTED).order_by("id").first()
    peer.unpaid(collected.reference, "Account closed")
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert summary.returned == 1
    receipt = Receipt.objects.get(pk=collected.receipt_id)
    assert receipt.is_reversed and "Account closed" in receipt.reversal_reason
    collected.instalment.refresh_from_db()
    assert collected.instalment.status == NoteInstalmentStatus.FAILED
    # The same unpaid seen again (a repeated page) does nothing more.
    StreamSettings.objects.filter(entity=ps_entity).update(collections_after=0)
    assert services.collections_fetch(entity=ps_entity, actor=clerk).returned == 0


def test_cancelled_note_presents_nothing(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    services.note_cancel(entity=ps_entity, actor=clerk, note=note)
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert summary.collected == 0 and not Receipt.objects.filter(loan=loan).exists()


def test_the_same_result_twice_in_one_batch_posts_one_receipt(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    first = _due(note)[0]
    outcome = CollectionOutcome(position=1, reference="CB-1", note_reference=note.reference, seq=first.seq, result="collected",
                                amount=first.amount, on=first.action_date)
    summary = services.collections_import(entity=ps_entity, actor=None, outcomes=[outcome, outcome])
    assert (summary.collected, summary.repeated) == (1, 1)
    assert Receipt.objects.filter(external_reference="CB-1").count() == 1


def test_result_the_book_cannot_take_is_kept_with_the_reason(ps_entity, clerk, borrower, peer):
    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    first = _due(note)[0]
    future = CollectionOutcome(position=1, reference="CB-F", note_reference=note.reference, seq=first.seq, result="collected",
                               amount=first.amount, on=dt.date.today() + dt.timedelta(days=5))
    summary = services.collections_import(entity=ps_entity, actor=None, outcomes=[future])
    assert summary.problems == 1
    assert "future" in CollectionResult.objects.get(reference="CB-F").problem


def test_scheduled_task_fetches_for_every_entity(ps_entity, clerk, borrower, peer):
    from imali.paystream.tasks import paystream_collections_fetch

    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    paystream_collections_fetch.call_local()
    assert Receipt.objects.filter(loan=loan).count() == len(_due(note))


def test_fetch_from_the_loan_page_and_the_api(client, ps_entity, clerk, borrower, peer):
    from django.urls import reverse

    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    client.force_login(clerk)
    page = client.post(reverse("web:paystream_collections_fetch", kwargs={"loan_id": loan.pk}), follow=True).content.decode()
    assert f"{len(_due(note))} collected" in page and 'data-kind="collected"' in page
    listed = client.get(f"/api/payment-stream/collections/?loan={loan.pk}&kind=collected").json()
    assert listed["count"] == len(_due(note))
    assert client.post("/api/payment-stream/collections/fetch/").json()["collected"] == 0


def test_unreadable_lines_are_kept_with_the_reason_and_the_feed_moves_on(client, ps_entity, clerk, borrower, peer):
    from django.urls import reverse

    from imali.paystream.models import CollectionProblem

    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    due = _due(note)
    line = {"reference": "RBAD", "noteRef": note.reference, "seq": due[0].seq, "result": "collected",
            "amount": "10.00", "date": dt.date.today().isoformat()}
    # Placed in the feed before the stream presents the due instalments (it does so on the fetch).
    peer.add_raw_result({**line, "reference": "RBAD-NAN", "amount": "NaN"})
    peer.add_raw_result({**line, "reference": "RBAD-EXP", "amount": "1E+2"})
    peer.add_raw_result({**line, "reference": "RBAD-DATE", "date": "31/01/2026"})
    peer.add_raw_result({k: v for k, v in {**line, "reference": "RBAD-SEQ"}.items() if k != "seq"})
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    # The good lines after the bad ones are imported ...
    assert summary.collected == len(due) and summary.malformed == 4
    assert Receipt.objects.filter(loan=loan).count() == len(due)
    # ... the bad ones kept with why, and the feed's position is past all of them.
    problems = {p.reference: p for p in CollectionProblem.objects.filter(entity=ps_entity)}
    assert set(problems) == {"RBAD-NAN", "RBAD-EXP", "RBAD-DATE", "RBAD-SEQ"}
    assert "'NaN'" in problems["RBAD-NAN"].reason and "'1E+2'" in problems["RBAD-EXP"].reason
    assert "not a date" in problems["RBAD-DATE"].reason and "Missing seq" in problems["RBAD-SEQ"].reason
    assert [problems[r].position for r in ("RBAD-NAN", "RBAD-EXP", "RBAD-DATE", "RBAD-SEQ")] == [1, 2, 3, 4]
    assert StreamSettings.objects.get(entity=ps_entity).collections_after == len(peer.state.results)
    # Reading the feed again from the start adds no second problem and posts nothing twice.
    StreamSettings.objects.filter(entity=ps_entity).update(collections_after=0)
    again = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert (again.collected, again.malformed) == (0, 4)
    assert CollectionProblem.objects.filter(entity=ps_entity).count() == 4
    assert Receipt.objects.filter(loan=loan).count() == len(due)
    # A person sees them on the request log screen.
    client.force_login(clerk)
    page = client.get(reverse("web:paystream_requests")).content.decode()
    assert 'id="collection-problems"' in page and "RBAD-DATE" in page and "not a date" in page
