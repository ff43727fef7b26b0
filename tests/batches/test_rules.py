"""Who each of the seven batch types reaches, positive and negative, on hand-built books; the drop
reasons; the merge values read set-based equal the one-client reads; the selection's queries pinned."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from imali.batches import selectors as batch_selectors
from imali.batches.selectors import batch_selection, loan_merge_values
from imali.batches.services import batch_preview, criteria_clean
from imali.clients.models import Client
from imali.loans.services import loan_write_off, non_loan_debit_add
from imali.messaging.models import MarketingOptOut
from imali.messaging.services import client_loan_values, template_update
from tests import factories

from .conftest import TODAY

pytestmark = pytest.mark.django_db


def chosen(entity, batch_type, **criteria) -> set[int]:
    cleaned = criteria_clean(entity=entity, batch_type=batch_type, data=criteria)
    return set(batch_selection(entity=entity, batch_type=batch_type, criteria=cleaned, today=TODAY).values_list("pk", flat=True))


def set_status(client, status, new_loans_allowed=True):
    Client.objects.filter(pk=client.pk).update(status=status, new_loans_allowed=new_loans_allowed)


# --- Payment arrears --------------------------------------------------------------------------
def test_arrears_reaches_clients_with_an_instalment_in_arrears_due_in_the_range(entity, book):
    late = book.loan()
    first, second, _third = book.dues(late)
    up_to_date = book.loan()
    book.pay_instalments(up_to_date, 2, on=second)
    partly = book.loan()
    book.pay_instalments(partly, 1, on=first)  # only the second instalment is in arrears

    assert chosen(entity, "arrears", due_from=first, due_to=second) == {late.client_id, partly.client_id}
    # Only instalments due in the range count: the first due alone leaves out the one who paid it.
    assert chosen(entity, "arrears", due_from=first, due_to=first) == {late.client_id}
    # A range after today has nothing in arrears yet.
    assert chosen(entity, "arrears", due_from=TODAY, due_to=TODAY + dt.timedelta(days=60)) == set()


@pytest.mark.parametrize("status", ["deceased", "debt_review", "handed_over"])
def test_arrears_and_loan_status_batches_leave_out_clients_the_lender_may_not_approach(entity, book, lender, status):
    """Regression: the manual Arrears batch reached deceased, debt-review and handed-over clients,
    whom the automatic arrears SMS leaves out; so did CRM on loan status (a message about a loan)."""
    late = book.loan()
    first, second, _ = book.dues(late)
    barred = book.loan()
    set_status(barred.client, status, new_loans_allowed=False)
    assert chosen(entity, "arrears", due_from=first, due_to=second) == {late.client_id}
    assert chosen(entity, "crm_loan_status", loan_status="active") == {late.client_id}


def test_arrears_minimum_is_the_clients_whole_arrears(entity, book):
    late = book.loan()
    first, second, _ = book.dues(late)
    partly = book.loan()
    book.pay_instalments(partly, 1, on=first)
    one_instalment = partly.instalment_amount
    assert chosen(entity, "arrears", due_from=first, due_to=second, min_arrears=str(one_instalment)) == {
        late.client_id, partly.client_id}
    assert chosen(entity, "arrears", due_from=first, due_to=second,
                  min_arrears=str(one_instalment + 1)) == {late.client_id}


# --- Payment received -------------------------------------------------------------------------
def test_payment_received_reaches_good_clients_whose_payment_made_an_instalment_paid(entity, book):
    paid = book.loan()
    first = book.dues(paid)[0]
    book.pay_instalments(paid, 1, on=first)
    part = book.loan()
    book.pay(part, "10.00", on=first)  # no instalment paid in full
    bad = book.loan()
    book.pay_instalments(bad, 1, on=first)
    set_status(bad.client, "bad", new_loans_allowed=False)
    no_new_loans = book.loan()
    book.pay_instalments(no_new_loans, 1, on=first)
    set_status(no_new_loans.client, "good", new_loans_allowed=False)

    assert chosen(entity, "payment_received", paid_from=first, paid_to=first) == {paid.client_id}
    assert chosen(entity, "payment_received", paid_from=first + dt.timedelta(days=1), paid_to=TODAY) == set()
    assert chosen(entity, "payment_received", paid_from=first, paid_to=first,
                  min_payment=str(paid.instalment_amount + 1)) == set()


# --- New loan -----------------------------------------------------------------------------------
def test_new_loan_reaches_inactive_clients_allowed_new_loans_who_owe_nothing(entity, book, lender):
    employer = factories.make_employer(entity=entity)
    inactive = book.borrower(employer=employer)
    set_status(inactive, "inactive")
    in_debt = book.borrower()
    set_status(in_debt, "inactive")
    non_loan_debit_add(entity=entity, actor=lender, client=in_debt, description="Bank charge", amount="25",
                       debit_date=dt.date(2026, 2, 1))
    not_allowed = book.borrower()
    set_status(not_allowed, "inactive", new_loans_allowed=False)
    good = book.borrower()  # status Good: not a new-loan prospect

    assert chosen(entity, "new_loan") == {inactive.pk}
    assert chosen(entity, "new_loan", employer=employer.pk) == {inactive.pk}
    assert chosen(entity, "new_loan", employer=factories.make_employer(entity=entity).pk) == set()
    assert good.pk not in chosen(entity, "new_loan")


# --- Repeat loan --------------------------------------------------------------------------------
def test_repeat_loan_reaches_good_clients_whose_earlier_loans_are_all_paid(entity, book, lender):
    repeat = book.borrower()
    earlier = book.loan(repeat, instalments=1)
    book.pay_instalments(earlier, 1, on=book.dues(earlier)[0])
    book.loan(repeat, disbursed_on=dt.date(2026, 2, 2))
    first_loan_only = book.loan()
    two_open = book.borrower()
    book.loan(two_open)
    paid_one = book.loan(two_open, instalments=1)
    book.pay_instalments(paid_one, 1, on=book.dues(paid_one)[0])
    book.loan(two_open)
    written_off = book.borrower()
    paid = book.loan(written_off, instalments=1)
    book.pay_instalments(paid, 1, on=book.dues(paid)[0])
    loan_write_off(loan=book.loan(written_off), actor=lender, reason="Absconded")
    set_status(written_off, "good")

    found = chosen(entity, "repeat_loan")
    assert repeat.pk in found
    assert first_loan_only.client_id not in found
    assert two_open.pk not in found
    assert written_off.pk not in found


# --- Payment final ------------------------------------------------------------------------------
def test_payment_final_reaches_clients_with_only_the_final_instalment_left(entity, book):
    final = book.loan(instalments=2)
    book.pay_instalments(final, 1, on=book.dues(final)[0])
    two_left = book.loan(instalments=3)
    book.pay_instalments(two_left, 1, on=book.dues(two_left)[0])
    single = book.loan(instalments=1)  # its only instalment is also its final one

    assert chosen(entity, "payment_final") == {final.client_id, single.client_id}
    set_status(final.client, "bad", new_loans_allowed=False)
    assert chosen(entity, "payment_final") == {single.client_id}


# --- CRM and CRM on loan status -----------------------------------------------------------------
def test_crm_filters_by_branch_status_employer_and_loan_on_the_book(entity, book):
    from imali.tenancy.models import Branch

    other_branch = Branch.objects.create(entity=entity, code="ZZ", name="Second")
    employer = factories.make_employer(entity=entity)
    borrower = book.loan().client
    prospect = book.borrower(branch=other_branch, employer=employer)
    dead = book.borrower()
    set_status(dead, "deceased")

    assert chosen(entity, "crm") == {borrower.pk, prospect.pk}
    assert chosen(entity, "crm", branch=other_branch.pk) == {prospect.pk}
    assert chosen(entity, "crm", employer=employer.pk) == {prospect.pk}
    assert chosen(entity, "crm", has_open_loan="yes") == {borrower.pk}
    assert chosen(entity, "crm", has_open_loan="no") == {prospect.pk}
    assert chosen(entity, "crm", client_status="inactive") == set()


def test_crm_on_loan_status(entity, book, lender):
    active = book.loan()
    off = book.loan()
    loan_write_off(loan=off, actor=lender, reason="Gone")
    assert chosen(entity, "crm_loan_status", loan_status="active") == {active.client_id}
    assert chosen(entity, "crm_loan_status", loan_status="written_off") == {off.client_id}
    assert chosen(entity, "crm_loan_status", loan_status="paid_up") == set()


# --- drops --------------------------------------------------------------------------------------
def test_preview_drops_no_cellphone_duplicates_opted_out_and_no_consent(entity, book, sender, funded):
    shared = "0829990001"
    consenting = book.borrower(marketing_consent=True)
    book.borrower(cellphone="", marketing_consent=True)
    book.borrower(cellphone=shared, marketing_consent=True)
    book.borrower(cellphone=shared, marketing_consent=True, id_number="8001015009087",
                  date_of_birth=dt.date(1980, 1, 1))
    stopped = book.borrower(marketing_consent=True)
    MarketingOptOut.objects.create(entity=entity, number=stopped.cellphone, client=stopped)
    book.borrower(marketing_consent=False)

    preview = batch_preview(actor=sender, entity=entity, batch_type="crm", criteria={}, today=TODAY)
    assert preview.selected == 6
    assert preview.dropped == {"no_cellphone": 1, "duplicate_number": 1, "opted_out": 1, "no_consent": 1}
    assert preview.recipients == 2
    assert consenting.name in preview.sample or preview.sample
    assert preview.credits_needed == preview.segments >= 2

    # An entity that needs no consent markets to those who gave none; an opt-out is still honoured.
    entity.marketing_consent_not_required = True
    entity.save()
    preview = batch_preview(actor=sender, entity=entity, batch_type="crm", criteria={}, today=TODAY)
    assert preview.dropped == {"no_cellphone": 1, "duplicate_number": 1, "opted_out": 1}
    assert preview.recipients == 3


def test_account_notices_ignore_marketing_consent_and_opt_out(entity, book, sender, funded):
    late = book.loan()
    MarketingOptOut.objects.create(entity=entity, number=late.client.cellphone)
    first, second, _ = book.dues(late)
    preview = batch_preview(actor=sender, entity=entity, batch_type="arrears",
                            criteria={"due_from": first, "due_to": second}, today=TODAY)
    assert (preview.recipients, preview.dropped) == (1, {})
    assert preview.sample == "Your loan is in arrears, please contact your microlender urgently."


def test_preview_text_segments_and_credits_come_from_the_entity_template(entity, book, sender, funded, lender):
    late = book.loan()
    first, second, _ = book.dues(late)
    template_update(actor=lender, entity=entity, message_type="arrears",
                    text="Dear {^Client Name^} you owe {^Client Total Outstanding Loan Amount^} " + "x" * 150)
    preview = batch_preview(actor=sender, entity=entity, batch_type="arrears",
                            criteria={"due_from": first, "due_to": second}, today=TODAY)
    expected = client_loan_values(entity=entity, client=late.client, today=TODAY)["Client Total Outstanding Loan Amount"]
    assert preview.sample.startswith(f"Dear {late.client.name} you owe {expected} ")
    assert preview.segments == preview.segments_most == 2
    assert preview.credits_needed == 2
    assert preview.credits_left == 10_000


def test_loan_merge_values_equal_the_one_client_read(entity, book, monkeypatch):
    late = book.loan()
    paid = book.loan(instalments=1)
    book.pay(paid, paid.total_repayable + 40, on=book.dues(paid)[0])  # paid up, with change
    both = book.borrower()
    book.loan(both)
    book.loan(both, principal="3000", disbursed_on=dt.date(2026, 2, 2))
    nobody = book.borrower()
    clients = [late.client, paid.client, both, nobody]
    for ids, ids_per_read in (([c.pk for c in clients], 10_000), ([c.pk for c in clients], 1), (None, 10_000)):
        # ids_per_read 1: the latest agreement still wins when the loans are read a few ids at a time.
        monkeypatch.setattr(batch_selectors, "_IDS_PER_READ", ids_per_read)
        values = loan_merge_values(entity=entity, today=TODAY, client_ids=ids)
        for c in clients:
            assert values.get(c.pk, {}) == {k: v for k, v in client_loan_values(entity=entity, client=c, today=TODAY).items()
                                            if c.pk in values or k not in ("Change", "Non-loan Debits")}


def test_selection_and_merge_are_a_fixed_number_of_queries(entity, book, sender, funded, lender,
                                                           django_assert_max_num_queries):
    template_update(actor=lender, entity=entity, message_type="arrears",
                    text="Dear {^Client Name^} pay {^Next Amount Due^} by {^Next Date Due^} {^Branch Name^}")

    def preview():
        return batch_preview(actor=sender, entity=entity, batch_type="arrears",
                             criteria={"due_from": "2026-01-01", "due_to": "2026-03-09"}, today=TODAY)

    book.loan()
    with django_assert_max_num_queries(20) as few:
        assert preview().recipients == 1
    for _ in range(8):
        book.loan()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert preview().recipients == 9


# --- criteria and rights ------------------------------------------------------------------------
def test_criteria_errors_name_the_field(entity):
    with pytest.raises(ValidationError) as refused:
        criteria_clean(entity=entity, batch_type="arrears", data={"due_from": "2026-03-01", "due_to": "2026-02-01",
                                                                   "min_arrears": "-5", "loan_status": "active"})
    errors = refused.value.message_dict
    assert set(errors) == {"due_to", "min_arrears", "loan_status"}
    with pytest.raises(ValidationError) as refused:
        criteria_clean(entity=entity, batch_type="crm_loan_status", data={})
    assert "loan_status" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        criteria_clean(entity=entity, batch_type="nonsense", data={})
    assert "batch_type" in refused.value.message_dict


def test_employer_of_another_entity_is_refused(entity, other_entity):
    foreign = factories.make_employer(entity=other_entity)
    with pytest.raises(ValidationError) as refused:
        criteria_clean(entity=entity, batch_type="new_loan", data={"employer": foreign.pk})
    assert "employer" in refused.value.message_dict


def test_preview_needs_the_processing_right(entity, other_entity):
    clerk = factories.make_user(entity=entity, rights=[])
    with pytest.raises(PermissionDenied):
        batch_preview(actor=clerk, entity=entity, batch_type="crm", criteria={})
    foreign_sender = factories.make_admin(entity=other_entity)
    with pytest.raises(PermissionDenied):
        batch_preview(actor=foreign_sender, entity=entity, batch_type="crm", criteria={})


def test_other_entities_clients_are_never_chosen(entity, other_entity, book):
    mine = book.loan()
    from tests.loans.conftest import make_loan, make_product

    theirs_user = factories.make_admin(entity=other_entity)
    theirs_user.disbursement_limit = 100000
    theirs_user.save()
    theirs = make_loan(other_entity, user=theirs_user, product=make_product(other_entity))
    for batch_type, criteria in [("crm", {}), ("crm_loan_status", {"loan_status": "active"}),
                                 ("arrears", {"due_from": "2025-06-01", "due_to": "2026-03-09"})]:
        found = chosen(entity, batch_type, **criteria)
        assert mine.client_id in found and theirs.client_id not in found
