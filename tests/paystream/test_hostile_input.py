"""Hostile input to the payment stream's API and screens (the probes of a QA pass): values longer
than their columns, dates far in the future, references in other scripts, a second amount with no
second account, edits of instalments the stream would refuse. Each is a 400 or a form error naming
the field, nothing is written and nothing is sent to the stream."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.paystream import services
from imali.paystream.models import (
    CreditPayment,
    DebiCheckMandate,
    NoteInstalment,
    StreamFunction,
    StreamRequest,
    StreamSettings,
)

from .conftest import ABSA_OK, approved_loan

pytestmark = pytest.mark.django_db

LONG_URL = "http://stream.example.com/" + "v1/" * 70  # 236 characters: a valid URL, longer than the column


@pytest.fixture
def api(client, clerk):
    client.force_login(clerk)
    return client


@pytest.fixture
def account(ps_entity, clerk, borrower):
    return services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)


def _stored(entity) -> tuple:
    return tuple(StreamSettings.objects.filter(entity=entity).values_list("base_url", "username").get())


# --- settings: a value longer than its column -----------------------------------------------------
def test_a_base_url_longer_than_its_column_is_a_400_and_nothing_is_saved(api, ps_entity):
    before = _stored(ps_entity)
    refused = api.put("/api/payment-stream/settings/", {"base_url": LONG_URL, "username": "x"}, content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"base_url"}
    assert _stored(ps_entity) == before


def test_the_settings_screen_names_a_base_url_too_long(api, ps_entity):
    before = _stored(ps_entity)
    shown = api.post(reverse("web:paystream_settings"), {"base_url": LONG_URL, "username": "x", "timeout_seconds": 10})
    assert shown.status_code == 400 and "base_url" in shown.context["form"].errors
    assert _stored(ps_entity) == before


def test_the_service_refuses_values_longer_than_their_columns(ps_entity, clerk):
    before = _stored(ps_entity)
    with pytest.raises(ValidationError) as refused:
        services.stream_settings_save(entity=ps_entity, actor=clerk, base_url=LONG_URL, username="u" * 81,
                                      password="p" * 201, branch_code="b" * 21)
    assert set(refused.value.error_dict) == {"base_url", "username", "password", "branch_code"}
    assert _stored(ps_entity) == before


# --- instalment edits -------------------------------------------------------------------------------
@pytest.fixture
def note(api, ps_entity, clerk, borrower, account):
    loan = approved_loan(ps_entity, clerk, borrower)
    return services.note_create(entity=ps_entity, actor=clerk, loan=loan, stream="eft", account=account)


def _edits() -> int:
    return StreamRequest.objects.filter(function=StreamFunction.EDIT_INSTALMENT).count()


@pytest.mark.parametrize("day", ["9999-12-31", "2200-01-01", "2032-01-05"])
def test_an_action_date_years_ahead_is_refused_naming_it(api, note, day):
    before = list(NoteInstalment.objects.filter(note=note).values_list("action_date", flat=True))
    refused = api.post(f"/api/payment-stream/notes/{note.pk}/instalment/", {"seq": 1, "action_date": day},
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"action_date"}
    assert list(NoteInstalment.objects.filter(note=note).values_list("action_date", flat=True)) == before
    assert _edits() == 0  # refused here, not sent to the stream


def test_an_action_date_within_two_years_of_the_last_instalment_is_taken(api, note):
    last = max(NoteInstalment.objects.filter(note=note).values_list("action_date", flat=True))
    day = last + dt.timedelta(days=700)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    taken = api.post(f"/api/payment-stream/notes/{note.pk}/instalment/", {"seq": 1, "action_date": day.isoformat()},
                     content_type="application/json")
    assert taken.status_code == 200, taken.content


def test_a_cancelled_notes_instalments_are_not_edited_nor_sent(api, ps_entity, clerk, note):
    services.note_cancel(entity=ps_entity, actor=clerk, note=note)
    refused = api.post(f"/api/payment-stream/notes/{note.pk}/instalment/", {"seq": 1, "tracking_days": 3},
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"note"}
    assert _edits() == 0


def test_an_instalment_no_longer_pending_is_not_edited_nor_sent(api, note):
    NoteInstalment.objects.filter(note=note, seq=1).update(status="collected")
    refused = api.post(f"/api/payment-stream/notes/{note.pk}/instalment/", {"seq": 1, "tracking_days": 3},
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"seq"}
    assert NoteInstalment.objects.get(note=note, seq=1).tracking_days == 0
    assert _edits() == 0


# --- DebiCheck mandates -------------------------------------------------------------------------------
def _mandate_body(loan, account, **changes) -> dict:
    return {"loan": loan.pk, "account": account.pk, "authentication": "tt3", "collection_day": 25,
            "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat(), **changes}


@pytest.mark.parametrize("day", ["9999-12-31", "2100-01-25"])
def test_a_first_collection_years_ahead_is_refused_naming_it(api, ps_entity, clerk, borrower, account, day):
    loan = approved_loan(ps_entity, clerk, borrower)
    refused = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account, first_collection_date=day),
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"first_collection_date"}
    assert not DebiCheckMandate.objects.exists()


@pytest.mark.parametrize("reference", ["١٢٣-AB", "ÄB-1", "straße", "ＡＢ１"])
def test_a_contract_reference_outside_a_z_0_9_and_dashes_is_refused(api, ps_entity, clerk, borrower, account, reference):
    loan = approved_loan(ps_entity, clerk, borrower)
    refused = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account, contract_reference=reference),
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"contract_reference"}
    assert not DebiCheckMandate.objects.exists()
    taken = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account, contract_reference="dc-7a"),
                     content_type="application/json")
    assert taken.status_code == 201 and taken.json()["contract_reference"] == "DC-7A"


# --- pay to client accounts (the screen) ------------------------------------------------------------
def test_a_second_amount_without_a_second_account_is_a_form_error_not_dropped(api, borrower, account):
    shown = api.post(reverse("web:paystream_pay", kwargs={"client_id": borrower.pk}),
                     {"account_1": account.pk, "amount_1": "10.00", "amount_2": "500.00"})
    assert shown.status_code == 400 and "account_2" in shown.context["pay_form"].errors
    assert not CreditPayment.objects.exists()
    assert not StreamRequest.objects.filter(function=StreamFunction.PAY_TO_CLIENT_ACCOUNT).exists()


# --- DebiCheck mandates over the API: numbers and flags read one way ---------------------------------
@pytest.mark.parametrize("rate", ["1e1", "1E1", "١٠", 1e1, "10.0001", True])
def test_an_adjustment_rate_is_plain_digits_with_up_to_three_places(api, ps_entity, clerk, borrower, account, rate):
    loan = approved_loan(ps_entity, clerk, borrower)
    refused = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account, adjustment_category="annually",
                                                                      adjustment_rate=rate), content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"adjustment_rate"}
    if rate == 1e1:  # a JSON number with a fraction or exponent arrives as a binary float: sent as a string instead
        assert refused.json()["adjustment_rate"] == ['Send the rate as a string, e.g. "3.5".']
    assert not DebiCheckMandate.objects.exists()


@pytest.mark.parametrize("flag", ["yes", 1, "true", "on"])
def test_date_adjustment_is_a_json_boolean(api, ps_entity, clerk, borrower, account, flag):
    loan = approved_loan(ps_entity, clerk, borrower)
    refused = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account, date_adjustment=flag),
                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"date_adjustment"}
    assert not DebiCheckMandate.objects.exists()


@pytest.mark.parametrize("rate", ["1e1", "١٠", "１０"])
def test_the_mandate_screen_reads_an_adjustment_rate_as_plain_digits(api, ps_entity, clerk, borrower, account, rate):
    loan = approved_loan(ps_entity, clerk, borrower)
    form = {"account": account.pk, "authentication": "tt3", "value_type": "fixed", "debit_sequence": "recurring",
            "instalment_amount": str(loan.instalment_amount), "maximum_collection": str(loan.instalment_amount),
            "frequency": "monthly", "collection_day": "25", "adjustment_category": "annually", "adjustment_rate": rate,
            "tracking_days": "0", "first_collection_date": (dt.date.today() + dt.timedelta(days=30)).isoformat()}
    shown = api.post(reverse("web:paystream_mandate_create", kwargs={"loan_id": loan.pk}), form)
    assert shown.status_code == 400 and "adjustment_rate" in shown.context["form"].errors
    assert not DebiCheckMandate.objects.exists()


# --- the stream's collection-results feed ---------------------------------------------------------
def _feed_line(note, **changes) -> dict:
    from .test_collections import _due

    return {"reference": "RODD", "noteRef": note.reference, "seq": _due(note)[0].seq, "result": "collected",
            "amount": "10.00", "date": dt.date.today().isoformat(), **changes}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"position": 2**40, "amount": "NaN"}, "position"),  # beyond the column: PostgreSQL refused the whole page
    ({"result": "collected-and-then-some"}, "result"),  # longer than the kind column; not a kind either
    ({"result": "paid"}, "result"),
    ({"reference": "RODD" + "9" * 40}, "longer than 40"),  # cut to 40, it would have been another result's reference
])
def test_a_feed_line_out_of_the_columns_range_is_set_aside_and_the_feed_moves_on(ps_entity, clerk, borrower, peer, changes,
                                                                                 reason):
    from imali.paystream.models import CollectionProblem, CollectionResult

    from .conftest import active_loan_with_note
    from .test_collections import _due

    loan, note = active_loan_with_note(ps_entity, clerk, borrower)
    due = _due(note)
    peer.add_raw_result(_feed_line(note, **changes))
    summary = services.collections_fetch(entity=ps_entity, actor=clerk)
    assert (summary.collected, summary.malformed) == (len(due), 1)
    problem = CollectionProblem.objects.get(entity=ps_entity, reference__startswith="RODD")
    assert reason in problem.reason
    assert not CollectionResult.objects.filter(reference__startswith="RODD").exists()
    assert set(CollectionResult.objects.values_list("kind", flat=True)) == {"collected"}


@pytest.mark.parametrize("last", [-1, "12", 2**64, None])
def test_a_feed_position_that_is_not_one_is_refused_and_the_place_kept(ps_entity, clerk, peer, monkeypatch, last):
    from imali.paystream.adapters.http import HttpPaymentStream

    original = HttpPaymentStream._call

    def call(self, function, key, body):
        answer = original(self, function, key, body)
        return {**answer, "last": last} if function == "CollectionResults" else answer

    monkeypatch.setattr(HttpPaymentStream, "_call", call)
    with pytest.raises(ValidationError) as refused:
        services.collections_fetch(entity=ps_entity, actor=clerk)
    assert "__all__" in refused.value.error_dict
    assert StreamSettings.objects.get(entity=ps_entity).collections_after == 0


# --- a closed account, reached by its id over the API ------------------------------------------------
def test_no_note_or_mandate_collects_from_a_closed_account(api, ps_entity, clerk, borrower, account):
    from imali.clients.models import ClientAccount
    from imali.paystream.models import PromissoryNote

    ClientAccount.objects.filter(pk=account.account_id).update(is_active=False)  # the account was closed
    loan = approved_loan(ps_entity, clerk, borrower)
    note = api.post("/api/payment-stream/notes/", {"loan": loan.pk, "stream": "eft", "account": account.pk},
                    content_type="application/json")
    assert note.status_code == 400 and set(note.json()) == {"account"}
    mandate = api.post("/api/payment-stream/mandates/", _mandate_body(loan, account), content_type="application/json")
    assert mandate.status_code == 400 and set(mandate.json()) == {"account"}
    assert not PromissoryNote.objects.exists() and not DebiCheckMandate.objects.exists()
    assert not StreamRequest.objects.filter(function=StreamFunction.CREATE_PROMISSORY).exists()


# --- a printed document the stream sends malformed ---------------------------------------------------
@pytest.mark.parametrize("spoil", [
    lambda doc: {**doc, "kind": "invoice"},
    lambda doc: {**doc, "lines": [{k: v for k, v in line.items() if k != "status"} for line in doc["lines"]]},
    lambda doc: {**doc, "fields": {**doc["fields"], "total": "NaN"}},
    lambda doc: {**doc, "lines": [{**doc["lines"][0], "amount": "1e3"}]},
    lambda doc: {**doc, "lines": "none"},
], ids=["kind", "line-column", "total", "line-amount", "lines-type"])
def test_a_malformed_document_from_the_stream_is_a_400_not_a_500(api, note, monkeypatch, spoil):
    from imali.paystream.adapters.http import HttpPaymentStream

    original = HttpPaymentStream._call

    def call(self, function, key, body):
        answer = original(self, function, key, body)
        return spoil(answer) if function == "PrintPromissory" else answer

    monkeypatch.setattr(HttpPaymentStream, "_call", call)
    refused = api.post(f"/api/payment-stream/notes/{note.pk}/print/")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/json"
    assert StreamRequest.objects.get(function=StreamFunction.PRINT_PROMISSORY).error_code == "invalid_document"
    monkeypatch.setattr(HttpPaymentStream, "_call", original)
    assert api.post(f"/api/payment-stream/notes/{note.pk}/print/").content.startswith(b"%PDF")


def test_registering_an_existing_account_names_client_account_when_refused(api, ps_entity, borrower, account):
    from imali.clients.services import client_account_add

    url = f"/api/payment-stream/clients/{borrower.pk}/accounts/"
    twice = api.post(url, {"client_account": account.account_id}, content_type="application/json")
    assert twice.status_code == 400 and set(twice.json()) == {"client_account"}
    wallet = client_account_add(client=borrower, actor=None, data={"kind": "wallet", "purpose": "payout",
                                                                    "wallet_provider": "M-Pesa", "wallet_number": "+27825550100"})
    not_bank = api.post(url, {"client_account": wallet.pk}, content_type="application/json")
    assert not_bank.status_code == 400 and set(not_bank.json()) == {"client_account"}


@pytest.mark.parametrize("count", [0, 3, 20000])
def test_a_payment_to_no_or_many_accounts_is_refused_naming_accounts(api, borrower, account, count):
    body = {"client": borrower.pk, "accounts": [{"account": account.pk, "amount": "10.00"}] * count}
    refused = api.post("/api/payment-stream/payments/", body, content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()) == {"accounts"}
    assert not CreditPayment.objects.exists()
