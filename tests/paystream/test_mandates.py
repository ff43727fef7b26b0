"""DebiCheck mandates end to end: services → httpx adapter → the local peer over loopback HTTP, the
client's signature through the signing module, the bank's answer simulated by the peer."""

from __future__ import annotations

import datetime as dt
import time
from decimal import ROUND_DOWN, Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from imali.core.models import AuditEntry
from imali.messaging.credits import credits_assign
from imali.paystream import mandates, services
from imali.paystream.adapters.base import Instalment, StreamRejected
from imali.paystream.adapters.http import HttpPaymentStream
from imali.paystream.models import DebiCheckMandate, MandateAmendment, MandateState, PromissoryNote
from imali.peers.paystream.server import SAST
from imali.signing import services as signing
from imali.signing.models import MandateStatus as SigningMandateStatus
from imali.signing.testing import code_from_outbox
from imali.tenancy.rights import Right
from tests import factories

from .conftest import ABSA_OK, approved_loan


def _errors(caught) -> dict:
    return {field: [e.message for e in errs] for field, errs in caught.value.error_dict.items()}


def _codes(caught) -> dict:
    return {field: [e.code for e in errs] for field, errs in caught.value.error_dict.items()}


@pytest.fixture
def bank(peer):
    """The bank's clock at 10:00 SAST today (so cut-offs never bite), moving with real time plus
    whatever a test adds with `bank.later(seconds)`; the client answers at once unless told."""
    base, started, extra = dt.datetime.combine(dt.date.today(), dt.time(10, 0), tzinfo=SAST), time.monotonic(), [0.0]
    peer.configure(now=lambda: base + dt.timedelta(seconds=time.monotonic() - started + extra[0]), mandate_answer_seconds=0.0)
    peer.later = lambda seconds: extra.__setitem__(0, extra[0] + seconds)
    return peer


@pytest.fixture
def loan_account(ps_entity, clerk, borrower):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    return approved_loan(ps_entity, clerk, borrower), account


def _most(instalment: Decimal) -> Decimal:
    return (instalment * Decimal("1.5")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def _data(loan, **changes):
    return {"authentication": "tt1", "value_type": "fixed", "frequency": "monthly", "collection_day": 25,
            "instalment_amount": str(loan.instalment_amount), "maximum_collection": str(_most(loan.instalment_amount)),
            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat(), **changes}


def _hand_signed(entity, actor, mandate):
    signing.document_hand_sign(actor=actor, entity=entity, document=signing.Document(loan=mandate.loan, mandate=mandate.document))


def _approved(entity, actor, loan, account, **changes):
    mandate = mandates.mandate_create(entity=entity, actor=actor, loan=loan, account=account, data=_data(loan, **changes))
    _hand_signed(entity, actor, mandate)
    mandates.mandate_submit(entity=entity, actor=actor, mandate=mandate)
    mandate = mandates.mandate_refresh(entity=entity, actor=actor, mandate=mandate)
    assert mandate.status == MandateState.APPROVED
    return mandate


def test_the_fields_are_checked_and_nothing_is_written(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(
            loan, maximum_collection=str(loan.instalment_amount * 2), frequency="weekly", collection_day=9,
            tracking_days=11, authentication="tt9", adjustment_category="annually"))
    errors = _errors(caught)
    assert set(errors) == {"maximum_collection", "collection_day", "tracking_days", "authentication", "adjustment_amount"}
    assert "at most 1.5 times it" in errors["maximum_collection"][0]
    assert errors["collection_day"] == ["Choose a weekly collection day 1 to 7."]
    assert errors["tracking_days"] == ["DebiCheck tracking is 0 to 10 days."]
    assert not DebiCheckMandate.objects.exists() and bank.summary()["mandates"] == {}


def test_tt1_flow_sign_send_and_the_bank_approves(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                      data=_data(loan, maximum_collection=str(_most(loan.instalment_amount)),
                                                 value_type="variable", tracking_days=3))
    assert mandate.status == MandateState.AWAITING_SIGNATURE and mandate.document.kind == "debicheck"
    assert mandate.document.contract_reference == mandate.contract_reference
    # Not signed yet: nothing goes to the bank.
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    assert _codes(caught) == {"mandate": ["mandate_not_signed"]}
    assert bank.summary()["mandates"] == {}
    _hand_signed(ps_entity, clerk, mandate)
    bank.configure(mandate_answer="none")
    sent = mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    assert sent.status == MandateState.AUTHENTICATING and sent.reference.startswith("M")
    assert sent.authenticate_by is not None
    # The client has not answered yet.
    assert mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=sent).status == MandateState.AUTHENTICATING
    bank.mandate_answer(sent.contract_reference, "approve")  # on the phone, within the 120 seconds
    done = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=sent)
    assert done.status == MandateState.APPROVED and done.decided_at is not None
    assert bank.summary()["mandates"][done.reference]["status"] == "APPROVED"
    assert bank.summary()["mandates"][done.reference]["maximumCollection"] == str(_most(loan.instalment_amount))
    actions = list(AuditEntry.objects.filter(entity=ps_entity, action__startswith="paystream.mandate")
                   .order_by("id").values_list("action", flat=True))
    assert actions == ["paystream.mandate_created", "paystream.mandate_sent", "paystream.mandate_decided"]


def test_tt1_without_an_answer_times_out(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    bank.configure(mandate_answer="none")
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan))
    _hand_signed(ps_entity, clerk, mandate)
    mandate = mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    assert mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate).status == MandateState.AUTHENTICATING
    bank.later(121)  # the bank's 120 seconds for TT1 real time pass without an answer
    mandate = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate)
    assert mandate.status == MandateState.TIMED_OUT
    assert mandate.rejection_reason == "The client did not authenticate in time."


def test_the_client_rejects_at_the_bank(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                      data=_data(loan, authentication="tt3", contract_reference="CARD-1"))
    bank.mandate_answer("CARD-1", "reject", "Wrong PIN three times")
    _hand_signed(ps_entity, clerk, mandate)
    mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    mandate = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate)
    assert (mandate.status, mandate.rejection_reason) == (MandateState.REJECTED, "Wrong PIN three times")


def test_collections_only_against_an_approved_mandate(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    bank.configure(mandate_answer="none")
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan))
    _hand_signed(ps_entity, clerk, mandate)
    mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    with pytest.raises(ValidationError) as caught:
        services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)
    assert _codes(caught) == {"loan": ["debicheck_mandate_required"]}
    assert f"mandate {mandate.contract_reference} is waiting for the client" in _errors(caught)["loan"][0]
    assert "CreatePromissory" not in bank.summary()["calls"] and not PromissoryNote.objects.exists()
    bank.mandate_answer(mandate.contract_reference, "approve")
    assert mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate).status == MandateState.APPROVED
    note = services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)
    assert note.mandate == mandate
    # The bank knows the note is a DebiCheck collection: an amount above the maximum is refused there too.
    with pytest.raises(ValidationError) as caught:
        services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, amount=str(mandate.maximum_collection + 1))
    assert _codes(caught) == {"amount": ["above_maximum_collection"]}
    # A mandate with a live note is not cancelled behind the note's back.
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_cancel(entity=ps_entity, actor=clerk, mandate=mandate)
    assert "cancel the note first" in _errors(caught)["mandate"][0]


def test_the_peer_refuses_a_collection_under_a_mandate_not_approved(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    bank.configure(mandate_answer="none")
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan))
    _hand_signed(ps_entity, clerk, mandate)
    mandate = mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    with HttpPaymentStream(base_url=bank.base_url, username="lender", password="s3cret-stream") as stream:
        with pytest.raises(StreamRejected) as caught:
            stream.create_promissory(key="dc-1", client_reference=loan.client.stream_registration.reference,
                                     account_reference=account.reference, stream="eft", mandate_reference=mandate.reference,
                                     instalments=[Instalment(seq=1, action_date=dt.date.today(), amount=Decimal("10.00"))])
        assert caught.value.code == "mandate_not_approved"


def test_amendment_is_signed_again_with_an_otp_and_authenticated_again(ps_entity, clerk, loan_account, bank, operator):
    loan, account = loan_account
    mandate = _approved(ps_entity, clerk, loan, account)
    old_maximum = mandate.maximum_collection
    # Frequency, account and contract reference are not amended.
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_amend(entity=ps_entity, actor=clerk, mandate=mandate, data={"frequency": "weekly"})
    assert _codes(caught) == {"frequency": ["not_amendable"]}
    # The signing module's OTP: the client is enrolled and Loan OTP is on.
    credits_assign(actor=operator, entity=ps_entity, channel="sms", amount=100)
    admin = factories.make_admin(entity=ps_entity)
    signing.otp_setup_update(actor=admin, entity=ps_entity, data={"enrol_client": True, "loan_otp": True, "threshold": "0"})
    enrolment = signing.enrolment_send(actor=clerk, entity=ps_entity, client=loan.client)
    signing.enrolment_verify(actor=clerk, entity=ps_entity, client=loan.client, challenge_id=enrolment.public_id,
                             code=code_from_outbox(enrolment))
    new_instalment = Decimal("1300.00")
    amendment = mandates.mandate_amend(entity=ps_entity, actor=clerk, mandate=mandate, data={
        "instalment_amount": str(new_instalment), "maximum_collection": str(Decimal("1560.00")),
        "collection_day": 99})
    assert amendment.document.contract_reference == f"{mandate.contract_reference}/A1"
    with pytest.raises(ValidationError) as caught:
        mandates.amendment_submit(entity=ps_entity, actor=clerk, amendment=amendment)
    assert _codes(caught) == {"mandate": ["mandate_not_signed"]}
    # Hand signing is refused: Loan OTP is on and the client is enrolled.
    with pytest.raises(ValidationError):
        signing.document_hand_sign(actor=clerk, entity=ps_entity, document=signing.Document(loan=loan, mandate=amendment.document))
    document = signing.Document(loan=loan, mandate=amendment.document)
    challenge = signing.document_otp_send(actor=clerk, entity=ps_entity, document=document)
    signing.document_otp_verify(actor=clerk, entity=ps_entity, document=document, challenge_id=challenge.public_id,
                                code=code_from_outbox(challenge))
    bank.configure(mandate_answer="none")
    amendment = mandates.amendment_submit(entity=ps_entity, actor=clerk, amendment=amendment)
    assert amendment.status == MandateState.AUTHENTICATING
    # Until the bank approves, the old terms stand.
    mandate = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate)
    assert mandate.maximum_collection == old_maximum
    bank.mandate_answer(mandate.contract_reference, "approve")
    mandate = mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=mandate)
    amendment.refresh_from_db()
    assert amendment.status == MandateState.APPROVED
    assert (mandate.instalment_amount, mandate.maximum_collection, mandate.collection_day) == (
        new_instalment, Decimal("1560.00"), 99)
    assert mandate.document == amendment.document and mandate.status == MandateState.APPROVED
    assert bank.summary()["mandates"][mandate.reference]["collectionDay"] == 99


def test_cancel_and_the_contract_reference_is_never_reused(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    mandate = _approved(ps_entity, clerk, loan, account, contract_reference="LOAN-77")
    cancelled = mandates.mandate_cancel(entity=ps_entity, actor=clerk, mandate=mandate, reason="client asked")
    assert cancelled.status == MandateState.CANCELLED
    assert bank.summary()["mandates"][mandate.reference]["status"] == "CANCELLED"
    cancelled.document.refresh_from_db()
    assert cancelled.document.status == SigningMandateStatus.CANCELLED
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                data=_data(loan, contract_reference="loan-77"))
    assert _codes(caught) == {"contract_reference": ["contract_reference_used"]}
    assert "never reused" in _errors(caught)["contract_reference"][0]
    # With every mandate cancelled the loan is no DebiCheck loan any more: another stream may collect it.
    assert mandates.collection_mandate(loan=loan) is None
    assert DebiCheckMandate.objects.count() == 1 and not MandateAmendment.objects.exists()


def test_the_bank_enforces_cut_off_times_and_unique_references(peer):
    friday = dt.date(2026, 12, 4)
    peer.configure(now=dt.datetime.combine(friday, dt.time(20, 45), tzinfo=SAST), mandate_answer="none")
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="s3cret-stream") as stream:
        employer = stream.add_employer(key="e", employer_number="9", name="Acme")
        client = stream.add_client(key="c", employer_reference=employer, client_number="1", branch="HO", surname="X",
                                   first_names="Y", id_number="1", cellphone="", date_of_birth=None, gender="M")
        account = stream.add_client_account(key="a", client_reference=client, holder="Y X", **ABSA_OK)
        terms = {"client_reference": client, "account_reference": account, "contract_reference": "REF-1",
                 "value_type": "fixed", "debit_sequence": "recurring", "instalment": Decimal("100.00"),
                 "maximum_collection": Decimal("150.00"), "frequency": "monthly", "collection_day": 25,
                 "first_collection_date": dt.date.today(), "date_adjustment": False, "adjustment_category": "never",
                 "adjustment_amount": None, "adjustment_rate": None, "tracking_days": 0}
        with pytest.raises(StreamRejected) as caught:
            stream.create_mandate(key="m1", authentication="tt1", **terms)
        assert (caught.value.code, caught.value.field) == ("after_cut_off", "authentication")
        with pytest.raises(StreamRejected) as caught:
            stream.create_mandate(key="m1d", authentication="tt1_delayed", **terms)
        assert caught.value.code == "after_cut_off"
        # TT2 is taken until 21:00; the client has until the end of the second business day (Tuesday).
        batch = stream.create_mandate(key="m1b", authentication="tt2", **{**terms, "contract_reference": "REF-2"})
        assert batch.status == "AUTHENTICATING"
        assert batch.authenticate_by == dt.datetime(2026, 12, 8, 23, 59, 59, tzinfo=SAST)
        with pytest.raises(StreamRejected) as caught:
            stream.create_mandate(key="m2", authentication="tt3", **{**terms, "maximum_collection": Decimal("150.01")})
        assert caught.value.code == "maximum_collection"
        # Card and PIN at the terminal is taken at any hour.
        state = stream.create_mandate(key="m3", authentication="tt3", **terms)
        assert state.status == "AUTHENTICATING"
        with pytest.raises(StreamRejected) as caught:
            stream.create_mandate(key="m4", authentication="tt3", **terms)
        assert caught.value.code == "contract_reference_used"


def test_every_call_needs_the_right(ps_entity, clerk, loan_account, bank):
    loan, account = loan_account
    nobody = factories.make_user(entity=ps_entity, rights=[Right.CAPTURE_LOANS])
    with pytest.raises(PermissionDenied):
        mandates.mandate_create(entity=ps_entity, actor=nobody, loan=loan, account=account, data=_data(loan))
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan))
    _hand_signed(ps_entity, clerk, mandate)
    for call in (mandates.mandate_submit, mandates.mandate_refresh, mandates.mandate_cancel):
        with pytest.raises(PermissionDenied):
            call(entity=ps_entity, actor=nobody, mandate=mandate)


def test_the_task_brings_in_the_banks_answer(ps_entity, clerk, loan_account, bank):
    from imali.paystream.tasks import paystream_mandate_poll

    loan, account = loan_account
    bank.configure(mandate_answer="none")
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan))
    _hand_signed(ps_entity, clerk, mandate)
    mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    bank.mandate_answer(mandate.contract_reference, "reject", "Client declined on the phone")
    paystream_mandate_poll.call_local()
    mandate.refresh_from_db()
    assert (mandate.status, mandate.rejection_reason) == (MandateState.REJECTED, "Client declined on the phone")


@pytest.mark.parametrize(("requested", "deadline", "why"), [
    # Thursday before Easter 2027: Good Friday (26 March) and Family Day (Monday 29 March) are no
    # business days, so the second one after the request is Wednesday 31 March (not Monday 29).
    (dt.datetime(2027, 3, 25, 10, 0), dt.date(2027, 3, 31), "Easter"),
    # Human Rights Day 2027 falls on a Sunday: the Monday after is the holiday.
    (dt.datetime(2027, 3, 19, 10, 0), dt.date(2027, 3, 24), "a Sunday holiday moved to the Monday"),
    # Day of Reconciliation, Thursday 16 December 2027.
    (dt.datetime(2027, 12, 15, 10, 0), dt.date(2027, 12, 20), "a weekday holiday"),
    # No holiday in the way: Friday → Tuesday.
    (dt.datetime(2026, 12, 4, 10, 0), dt.date(2026, 12, 8), "weekend only"),
])
def test_tt2_deadline_skips_the_countrys_public_holidays(ps_entity, clerk, loan_account, peer, requested, deadline, why):
    """TT2 batch: the client approves by the end of the second business day; public holidays of
    South Africa (the bank's country) are no business days. Through the service, over HTTP."""
    loan, account = loan_account
    peer.configure(now=requested.replace(tzinfo=SAST), mandate_answer="none")
    mandate = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                      data=_data(loan, authentication="tt2"))
    _hand_signed(ps_entity, clerk, mandate)
    sent = mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=mandate)
    assert sent.status == MandateState.AUTHENTICATING
    assert sent.authenticate_by == dt.datetime.combine(deadline, dt.time(23, 59, 59), tzinfo=SAST), why
    # The bank times it out only after that day has ended.
    peer.configure(now=dt.datetime.combine(deadline, dt.time(23, 59), tzinfo=SAST))
    assert mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=sent).status == MandateState.AUTHENTICATING
    peer.configure(now=dt.datetime.combine(deadline + dt.timedelta(days=1), dt.time(0, 0), tzinfo=SAST))
    assert mandates.mandate_refresh(entity=ps_entity, actor=clerk, mandate=sent).status == MandateState.TIMED_OUT


def test_tt2_deadline_follows_the_peers_country():
    from imali.peers.paystream.server import tt2_deadline

    # A peer for another country counts that country's holidays: 1 July 2027 (a Thursday) is Sir
    # Seretse Khama Day in Botswana, an ordinary business day in South Africa.
    monday = dt.datetime(2027, 6, 28, 9, 0, tzinfo=SAST)
    assert tt2_deadline(monday, "ZA").date() == dt.date(2027, 6, 30)
    assert tt2_deadline(dt.datetime(2027, 6, 30, 9, 0, tzinfo=SAST), "BW").date() == dt.date(2027, 7, 5)
    assert tt2_deadline(dt.datetime(2027, 6, 30, 9, 0, tzinfo=SAST), "ZA").date() == dt.date(2027, 7, 2)


def _approved_mandate(entity, actor, loan, account, **changes):
    mandate = mandates.mandate_create(entity=entity, actor=actor, loan=loan, account=account, data=_data(loan, **changes))
    _hand_signed(entity, actor, mandate)
    mandates.mandate_submit(entity=entity, actor=actor, mandate=mandate)
    mandate = mandates.mandate_refresh(entity=entity, actor=actor, mandate=mandate)
    assert mandate.status == MandateState.APPROVED
    return mandate


def _future(day: int, accept) -> dt.date:
    """The first `day` of a month, from next month on, that `accept` takes."""
    month = dt.date.today().replace(day=1)
    while True:
        month = (month + dt.timedelta(days=32)).replace(day=1)
        if accept(month.replace(day=day)):
            return month.replace(day=day)


def test_a_debicheck_collection_moves_off_the_mandates_day_only_by_amending_it(ps_entity, clerk, loan_account, bank, borrower):
    """A date change is a change of the mandate, which the client authenticates again: an instalment
    edit keeps to the collection day; with date adjustment allowed, a collection day that is no
    business day may move to the business day next to it."""
    from imali.loans.schedule import is_business_day

    loan, account = loan_account
    mandate = _approved_mandate(ps_entity, clerk, loan, account, collection_day=25)
    note = services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="naedo", account=account)
    edits = bank.state.calls.get("EditInstalment", 0)
    on_day = _future(25, lambda d: d.weekday() < 5)
    with pytest.raises(ValidationError) as caught:
        services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, action_date=on_day - dt.timedelta(days=5))
    assert _codes(caught) == {"action_date": ["outside_mandate"]}
    assert f"mandate {mandate.contract_reference} collects on day 25 of each month" in _errors(caught)["action_date"][0]
    assert bank.state.calls.get("EditInstalment", 0) == edits  # nothing sent
    assert services.instalment_edit(entity=ps_entity, actor=clerk, note=note, seq=1, action_date=on_day).action_date == on_day
    # Date adjustment allowed: a Saturday 25th may be collected on the Friday or the Monday, not earlier.
    other = approved_loan(ps_entity, clerk, borrower, principal="2000")
    _approved_mandate(ps_entity, clerk, other, account, collection_day=25, date_adjustment="on")
    adjusted = services.note_create(entity=ps_entity, actor=clerk, loan=other, stream="naedo", account=account)
    # A Saturday 25th whose Friday and Monday are business days (Heritage Day is 24 September).
    saturday = _future(25, lambda d: d.weekday() == 5 and is_business_day(d - dt.timedelta(days=1), "ZA")
                       and is_business_day(d + dt.timedelta(days=2), "ZA"))
    for moved in (saturday - dt.timedelta(days=1), saturday + dt.timedelta(days=2)):
        edited = services.instalment_edit(entity=ps_entity, actor=clerk, note=adjusted, seq=1, action_date=moved)
        assert edited.action_date == moved
    with pytest.raises(ValidationError) as caught:
        services.instalment_edit(entity=ps_entity, actor=clerk, note=adjusted, seq=1, action_date=saturday - dt.timedelta(days=2))
    assert _codes(caught) == {"action_date": ["outside_mandate"]}


@pytest.mark.parametrize(("frequency", "day", "adjust", "date", "kept"), [
    ("weekly", 3, False, dt.date(2027, 3, 3), True),  # a Wednesday
    ("weekly", 3, False, dt.date(2027, 3, 4), False),
    ("fortnightly", 1, False, dt.date(2027, 3, 15), True),  # 14 days after the first collection (1 March)
    ("fortnightly", 1, False, dt.date(2027, 3, 8), False),
    ("monthly", 99, False, dt.date(2027, 2, 28), True),  # the last day of February
    ("monthly", 30, False, dt.date(2027, 2, 28), True),  # day 30 falls on February's last day
    ("monthly", 99, True, dt.date(2027, 1, 29), True),  # 31 January 2027 is a Sunday: back to the Friday
    ("monthly", 99, True, dt.date(2027, 2, 1), True),  # ... or on to the Monday, in the next month
    ("monthly", 99, False, dt.date(2027, 2, 1), False),
    ("monthly", 25, True, dt.date(2027, 3, 26), False),  # 25 March 2027 is a Thursday: no adjustment
    ("monthly", 25, True, dt.date(2027, 3, 29), False),  # Family Day, nowhere near the 25th
])
def test_which_dates_keep_to_the_mandate(frequency, day, adjust, date, kept):
    from types import SimpleNamespace

    mandate = SimpleNamespace(frequency=frequency, collection_day=day, date_adjustment=adjust,
                              first_collection_date=dt.date(2027, 3, 1))
    assert services._on_mandate_day(mandate, date, "ZA") is kept


def _at(monkeypatch, hour: int, minute: int) -> None:
    when = dt.datetime.combine(dt.date.today(), dt.time(hour, minute), tzinfo=SAST)
    monkeypatch.setattr(mandates, "bank_now", lambda: when)


def test_after_the_banks_cut_off_a_tt1_mandate_is_refused_when_made_not_once_signed(
        ps_entity, clerk, loan_account, bank, monkeypatch):
    """The banks take no TT1 request after 20:30 and no TT2 after 21:00 (South African time): staff
    hear it when they create the mandate, naming the field and the ways still open, and nothing is
    written; a mandate made before the cut-off and signed after it is refused before it is sent."""
    loan, account = loan_account
    _at(monkeypatch, 20, 45)
    for authentication in ("tt1", "tt1_delayed"):
        with pytest.raises(ValidationError) as caught:
            mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                    data=_data(loan, authentication=authentication))
        assert _codes(caught) == {"authentication": ["after_cut_off"]}
        message = caught.value.message_dict["authentication"][0]
        assert "after 20:30 South African time (it is 20:45)" in message and "TT2 batch or TT3 card and PIN" in message
    assert not DebiCheckMandate.objects.filter(loan=loan).exists()
    assert mandates.authentication_open_now() == "tt2"
    _at(monkeypatch, 21, 5)
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account, data=_data(loan, authentication="tt2"))
    assert _codes(caught) == {"authentication": ["after_cut_off"]}
    assert mandates.authentication_open_now() == "tt3"
    # TT3 (card and PIN at a terminal) has no cut-off.
    assert mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                   data=_data(loan, authentication="tt3")).authentication == "tt3"
    # Made at 20:25, signed at 20:35: refused before anything is sent.
    _at(monkeypatch, 20, 25)
    late = mandates.mandate_create(entity=ps_entity, actor=clerk, loan=loan, account=account,
                                   data=_data(loan, contract_reference="LATE-1"))
    _hand_signed(ps_entity, clerk, late)
    _at(monkeypatch, 20, 35)
    with pytest.raises(ValidationError) as caught:
        mandates.mandate_submit(entity=ps_entity, actor=clerk, mandate=late)
    assert _codes(caught) == {"authentication": ["after_cut_off"]}
    assert bank.summary()["mandates"] == {}
    assert DebiCheckMandate.objects.get(pk=late.pk).status == MandateState.SIGNED
