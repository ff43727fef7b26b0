"""The ten functions end to end: services → httpx adapter → the local peer over loopback HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from imali.clients.models import AccountKind
from imali.core.models import AuditEntry
from imali.paystream import services
from imali.paystream.adapters.base import StreamRejected
from imali.paystream.adapters.http import HttpPaymentStream
from imali.paystream.models import (
    CreditPayment,
    CreditPaymentStatus,
    NoteInstalmentStatus,
    NoteStatus,
    RequestStatus,
    StreamRequest,
    WalletStatus,
)
from tests import factories

from .conftest import ABSA_OK, approved_loan


def _errors(caught) -> dict:
    return {field: [e.message for e in errs] for field, errs in caught.value.error_dict.items()}


def test_account_registration_registers_employer_then_client_then_account(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    state = peer.summary()
    assert (state["employers"], state["clients"], state["accounts"]) == (1, 1, 1)
    assert account.reference.startswith("A") and account.cdv_bank == "ABSA"
    assert account.account.kind == AccountKind.BANK and account.account.account_number == "4012345679"
    assert borrower.stream_registration.reference.startswith("C")
    actions = set(AuditEntry.objects.filter(entity=ps_entity).values_list("action", flat=True))
    assert {"paystream.employer_added", "paystream.client_added", "paystream.account_added"} <= actions
    # Registering the client again is a no-op: the stream's reference is kept.
    assert services.client_register(entity=ps_entity, actor=clerk, client=borrower).reference == borrower.stream_registration.reference
    assert peer.summary()["clients"] == 1


def test_cdv_failure_names_the_branch_and_sends_nothing(ps_entity, clerk, borrower, peer):
    with pytest.raises(ValidationError) as caught:
        services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="632005",
                                  account_number="4012345678", account_type="cheque")
    assert _errors(caught) == {"account_number": ["The account number fails the check digit for branch 632005."]}
    assert peer.summary()["calls"] == {}
    assert not StreamRequest.objects.exists()


def test_client_without_employer_is_refused_by_the_order_rule(ps_entity, clerk, peer):
    loner = factories.make_client(entity=ps_entity)
    with pytest.raises(ValidationError) as caught:
        services.client_register(entity=ps_entity, actor=clerk, client=loner)
    assert "employer" in _errors(caught)


def test_peer_enforces_the_order_rules_on_the_wire(peer):
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="s3cret-stream") as stream:
        with pytest.raises(StreamRejected) as caught:
            stream.add_client(key="k1", employer_reference="E404", client_number="1", branch="HO", surname="X",
                              first_names="Y", id_number="1", cellphone="", date_of_birth=None, gender="M")
        assert caught.value.code == "employer_not_found"
        employer = stream.add_employer(key="k2", employer_number="9", name="Acme")
        client = stream.add_client(key="k3", employer_reference=employer, client_number="1", branch="HO", surname="X",
                                   first_names="Y", id_number="1", cellphone="", date_of_birth=None, gender="M")
        with pytest.raises(StreamRejected) as caught:
            stream.pay_to_client_account(key="k4", client_reference=client, parts=[("A404", Decimal("10.00"))],
                                         cash_amount=Decimal("0"))
        assert caught.value.code == "account_not_registered"
        with pytest.raises(StreamRejected) as caught:
            stream.add_client_account(key="k5", client_reference=client, branch_code="250655", account_number="6200000008",
                                      account_type="cheque", holder="Y X")
        assert (caught.value.code, caught.value.field) == ("cdv_111", "account_number")
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="wrong") as stream:
        with pytest.raises(StreamRejected) as caught:
            stream.add_employer(key="k6", employer_number="1", name="Z")
        assert caught.value.code == "unauthorised"


def test_right_is_checked_on_every_call(ps_entity, borrower, peer):
    no_right = factories.make_user(entity=ps_entity, rights=[factories.Right.VIEW_CLIENTS])
    with pytest.raises(PermissionDenied):
        services.client_register(entity=ps_entity, actor=no_right, client=borrower)
    other = factories.make_entity()
    outsider = factories.make_user(entity=other, rights=[factories.Right.PAYMENT_STREAM_WEB_SERVICES])
    with pytest.raises(PermissionDenied):
        services.client_register(entity=ps_entity, actor=outsider, client=borrower)
    assert peer.summary()["calls"] == {}


def test_stream_revoking_the_right_is_reported(ps_entity, clerk, borrower, peer):
    peer.configure(right_granted=False)
    with pytest.raises(ValidationError) as caught:
        services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    assert "Allow access to payment-stream web services" in str(caught.value)


def test_note_from_the_loan_schedule_print_edit_cancel(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    peer.configure(activation_delay=60)
    note = services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="naedo", account=account, tracking_days=5)
    rows = list(note.instalments.all())
    assert len(rows) == 3 and note.status == NoteStatus.PENDING and note.reference.startswith("N")
    assert note.total == sum(r.amount for r in rows) and all(r.tracking_days == 5 for r in rows)
    # A second live note for the loan would collect twice.
    with pytest.raises(ValidationError):
        services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)
    document, pdf = services.note_print(entity=ps_entity, actor=clerk, note=note)
    assert document.kind == "promissory_note" and pdf.startswith(b"%PDF")
    # NAEDO: the amount cannot change; the action date can.
    with pytest.raises(ValidationError) as caught:
        services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=2, amount="10.00")
    assert "amount" in _errors(caught)
    new_date = rows[1].action_date + dt.timedelta(days=3)
    edited = services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=2, action_date=new_date)
    assert edited.action_date == new_date
    assert peer.state.notes[note.reference].instalments[2]["actionDate"] == new_date.isoformat()
    cancelled = services.note_cancel(entity=ps_entity, actor=clerk, note=note)
    assert cancelled.status == NoteStatus.CANCELLED
    assert set(cancelled.instalments.values_list("status", flat=True)) == {NoteInstalmentStatus.CANCELLED}
    document, _ = services.note_print(entity=ps_entity, actor=clerk, note=cancelled)
    assert document.kind == "cancellation"


def test_amount_edits_in_eft_and_print_refused_for_other_statuses(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    note = services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)
    edited = services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, amount="123.45")
    assert edited.amount == Decimal("123.45")
    assert peer.state.notes[note.reference].instalments[1]["amount"] == "123.45"
    note.refresh_from_db()
    assert note.total == sum(i.amount for i in note.instalments.all())
    peer.set_note_status(note.reference, "NOT_LOADED")
    with pytest.raises(ValidationError) as caught:
        services.note_print(entity=ps_entity, actor=clerk, note=note)
    assert "only when active, pending or cancelled" in str(caught.value)


def test_pay_to_two_accounts_and_cash_then_print(ps_entity, clerk, borrower, peer):
    first = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    second = services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="250655",
                                       account_number="62000000008", account_type="savings")
    loan = approved_loan(ps_entity, clerk, borrower)
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan,
                                  parts=[(first, "1000.00"), (second, "1500.50")], cash_amount="499.50")
    assert payment.status == CreditPaymentStatus.ACCEPTED and payment.total == Decimal("3000.00")
    assert peer.state.payments[payment.reference]["total"] == "3000.00"
    document, pdf = services.client_credit_print(entity=ps_entity, actor=clerk, payment=payment)
    assert [line["amount"] for line in document.lines] == ["1000.00", "1500.50", "499.50"]
    assert pdf.startswith(b"%PDF")
    # The loan is paid out once.
    with pytest.raises(ValidationError):
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(first, "1.00")])
    # The same account twice is refused before sending.
    with pytest.raises(ValidationError) as caught:
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, parts=[(first, "1.00"), (first, "2.00")])
    assert "account_2" in _errors(caught)


def test_wallet_created_later_and_joins_the_accounts(ps_entity, clerk, borrower, peer):
    peer.configure(wallet_delay=600)  # "normally within 10 minutes": not yet when first asked
    wallet = services.wallet_create(entity=ps_entity, actor=clerk, client=borrower)
    assert wallet.status == WalletStatus.REQUESTED
    assert services.wallet_refresh(entity=ps_entity, actor=clerk, wallet=wallet).status == WalletStatus.REQUESTED
    peer.configure(wallet_delay=0)
    peer.state.wallets[wallet.reference].due = 0
    created = services.wallet_refresh(entity=ps_entity, actor=clerk, wallet=wallet)
    assert created.status == WalletStatus.CREATED and created.wallet_number.startswith("W")
    assert borrower.accounts.filter(kind=AccountKind.WALLET, wallet_provider__endswith=created.wallet_number).exists()
    # The wallet can receive a credit payment.
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, parts=[(created.account, "50.00")])
    assert payment.status == CreditPaymentStatus.ACCEPTED
    document, _ = services.client_credit_print(entity=ps_entity, actor=clerk, payment=payment)
    assert document.lines[0]["to"] == f"Wallet {created.wallet_number}"


def test_wallet_needs_a_cellphone_unique_in_the_branch(ps_entity, clerk, borrower, peer):
    factories.make_client(entity=ps_entity, id_number=factories.SA_IDS[1][0], date_of_birth=factories.SA_IDS[1][1],
                          employer=borrower.employer)
    with pytest.raises(ValidationError) as caught:
        services.wallet_create(entity=ps_entity, actor=clerk, client=borrower)
    assert "cellphone" in _errors(caught)
    assert peer.summary()["calls"] == {}


def test_card_issue_receipt_only_after_the_card_was_assigned(ps_entity, clerk, borrower, peer):
    registered = services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    with pytest.raises(ValidationError) as caught:
        services.card_issue_receipt_print(entity=ps_entity, actor=clerk, client=borrower, card_number="5221 0012 3456 7890")
    assert "card_number" in _errors(caught)
    peer.assign_card(registered.reference, "5221001234567890")
    receipt, pdf = services.card_issue_receipt_print(entity=ps_entity, actor=clerk, client=borrower,
                                                     card_number="5221 0012 3456 7890")
    assert receipt.card_last_four == "7890" and pdf.startswith(b"%PDF")


def test_entity_isolation_in_services(ps_entity, clerk, borrower, peer):
    from .conftest import stream_entity

    other = stream_entity(factories.make_entity(), peer)
    stranger = factories.make_client(entity=other, employer=factories.make_employer(entity=other))
    with pytest.raises(PermissionDenied):
        services.account_register(entity=ps_entity, actor=clerk, client=stranger, **ABSA_OK)


def test_missing_module_or_settings_is_a_clear_error(entity, borrower_free_entity=None):
    user = factories.make_user(entity=entity, rights=[factories.Right.PAYMENT_STREAM_WEB_SERVICES])
    client = factories.make_client(entity=entity, employer=factories.make_employer(entity=entity))
    with pytest.raises(ValidationError) as caught:
        services.client_register(entity=entity, actor=user, client=client)
    assert "not switched on" in str(caught.value)


# -- reliability ------------------------------------------------------------------------------
def test_down_then_retry_uses_the_same_reference(ps_entity, clerk, borrower, peer):
    peer.configure(down=True)
    with pytest.raises(ValidationError) as caught:
        services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    assert "did not answer" in str(caught.value)
    employer_request = StreamRequest.objects.get()
    assert (employer_request.status, employer_request.attempts) == (RequestStatus.UNAVAILABLE, services.ATTEMPTS)
    peer.configure(down=False)
    services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    employer_request.refresh_from_db()
    assert employer_request.status == RequestStatus.SUCCEEDED and employer_request.attempts == services.ATTEMPTS + 1
    assert peer.summary()["employers"] == 1


def test_lost_reply_is_retried_and_paid_once(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    peer.configure(drop_next=1)  # the stream acts, the reply is lost; the in-call retry gets the recorded answer
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, parts=[(account, "700.00")])
    assert payment.status == CreditPaymentStatus.ACCEPTED
    assert peer.summary()["calls"]["PayToClientAccount"] == 1 and len(peer.state.payments) == 1
    request = StreamRequest.objects.get(idempotency_reference=payment.idempotency_reference)
    assert request.attempts == 2


def test_crash_between_sending_and_recording_then_retry_finds_the_request(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    # The stream is unreachable once the payment row and its request are written: the state a
    # process leaves when it dies after sending (the row SENDING, no answer recorded) ...
    peer.configure(down=True)
    with pytest.raises(ValidationError):
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    payment = CreditPayment.objects.get()
    assert payment.status == CreditPaymentStatus.SENDING
    # ... and the stream did receive it: the dead process's request, sent with the payment's reference.
    peer.configure(down=False)
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="s3cret-stream") as stream:
        first_reference = stream.pay_to_client_account(
            key=str(payment.idempotency_reference), client_reference=borrower.stream_registration.reference,
            parts=[(account.reference, Decimal("3000.00"))], cash_amount=Decimal("0.00"))
    # Paying the loan out again finds the waiting payment and resends it with the same reference.
    again = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert again.pk == payment.pk and again.reference == first_reference
    assert len(peer.state.payments) == 1 and CreditPayment.objects.count() == 1


def test_rejecting_stream_marks_the_payment_rejected(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    peer.configure(reject_next=1)
    with pytest.raises(ValidationError) as caught:
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, parts=[(account, "10.00")])
    assert "rejected" in str(caught.value)
    payment = CreditPayment.objects.get()
    assert payment.status == CreditPaymentStatus.REJECTED and payment.rejection


def test_slow_stream_times_out_within_bounds(ps_entity, clerk, borrower, peer):
    from imali.paystream.models import StreamSettings

    StreamSettings.objects.filter(entity=ps_entity).update(timeout_seconds=1)
    peer.configure(slow_seconds=1.5)
    with pytest.raises(ValidationError) as caught:
        services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    assert "did not answer" in str(caught.value)
    peer.configure(slow_seconds=0)
    services.client_register(entity=ps_entity, actor=clerk, client=borrower)
    assert peer.summary()["employers"] == 1  # the slow attempts' employer was recorded once under one key


def test_wallet_poll_task_brings_the_wallet_in(ps_entity, clerk, borrower, peer):
    from imali.paystream.tasks import paystream_wallet_poll

    peer.configure(wallet_delay=0)
    wallet = services.wallet_create(entity=ps_entity, actor=clerk, client=borrower)
    paystream_wallet_poll.call_local()
    wallet.refresh_from_db()
    assert wallet.status == WalletStatus.CREATED and wallet.account is not None


def test_demo_setup_switches_the_stream_on_for_the_demo_lender(entity, peer):
    from imali.paystream.demo_data import DEMO_PEER_PORT, paystream_demo_ensure
    from imali.paystream.models import StreamSettings
    from imali.tenancy.models import Module, Role

    admin = factories.make_user(entity=entity)
    admin.roles.add(Role.objects.get(entity=entity, name="Administrator"))  # as the demo's generated administrator
    assert paystream_demo_ensure(entity_codes=[entity.code]) is True
    entity.refresh_from_db()
    assert entity.has_module(Module.PAYMENT_STREAMS)
    assert StreamSettings.objects.get(entity=entity).base_url == f"http://127.0.0.1:{DEMO_PEER_PORT}"
    assert paystream_demo_ensure(entity_codes=[entity.code]) is False


def test_leftover_request_for_another_body_does_not_block_a_new_one(ps_entity, clerk, borrower, peer):
    services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    peer.configure(down=True)
    with pytest.raises(ValidationError):  # FNB account: no answer, the request stays resumable
        services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="250655",
                                  account_number="62000000008", account_type="savings")
    peer.configure(down=False)
    # Meanwhile the stream had acted on it under that key: a crash's leftover.
    leftover = StreamRequest.objects.filter(function="AddClientAccount").order_by("-id").first()
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="s3cret-stream") as stream:
        stream.add_client_account(key=str(leftover.idempotency_reference), client_reference=borrower.stream_registration.reference,
                                  branch_code="250655", account_number="62000000008", account_type="savings",
                                  holder=f"{borrower.full_names} {borrower.surname}")
    # A different account now: the leftover's key is refused for it, so it goes under a fresh one.
    third = services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="198765",
                                      account_number="1001234565", account_type="cheque")
    assert third.cdv_bank == "Nedbank"
    # And the FNB account registered again resumes the leftover: the stream's first answer, no duplicate.
    fnb = services.account_register(entity=ps_entity, actor=clerk, client=borrower, branch_code="250655",
                                    account_number="62000000008", account_type="savings")
    assert peer.state.accounts[fnb.reference]["accountNumber"] == "62000000008"
    assert len(peer.state.clients[borrower.stream_registration.reference]["accounts"]) == 3


def test_eft_action_dates_are_business_days_of_the_entitys_country(ps_entity, clerk, borrower, peer):
    """EFT debits go out Monday to Friday, never on a public holiday (DOMAIN §7); no action date
    in the past. The stream is not asked when the date is refused."""
    import holidays

    from imali.loans.schedule import is_business_day

    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    note = services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)
    today = dt.date.today()
    saturday = today + dt.timedelta(days=(5 - today.weekday()) % 7 or 7)
    calendar = holidays.country_holidays(ps_entity.country, years=[today.year, today.year + 1])
    holiday, name = next((d, n) for d, n in sorted(calendar.items()) if d > today and d.weekday() < 5)
    edits = peer.state.calls.get("EditInstalment", 0)
    for day, words in ((saturday, "is a Saturday"), (holiday, f"is a public holiday ({name})"),
                       (today - dt.timedelta(days=1), "cannot be in the past")):
        with pytest.raises(ValidationError) as caught:
            services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, action_date=day)
        assert words in _errors(caught)["action_date"][0]
    assert peer.state.calls.get("EditInstalment", 0) == edits
    business = next(holiday + dt.timedelta(days=n) for n in range(1, 10)
                    if is_business_day(holiday + dt.timedelta(days=n), ps_entity.country))
    assert services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, action_date=business).action_date == business
