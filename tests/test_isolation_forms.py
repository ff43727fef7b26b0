"""Entity isolation and rights, probed where an id does not travel in the path.

tests/test_isolation.py walks every route with an object kwarg. These probes go further through
the real HTTP stack (screens and API): ids in query strings, form fields and JSON bodies naming
another entity's rows; every route called by a signed-in user holding no right; the mobile-money
callbacks (one entity's setup must not post to another's loan, a forged one changes nothing);
and the OTP entry points (tries per code, reuse, a code for one document used on another)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imali.core.models import AuditEntry
from tests import factories
from tests.isolation_book import build_book
from tests.test_isolation import SKIP_PREFIXES, _model_for_kwarg, _object_of, _routes, _url_for

pytestmark = pytest.mark.django_db

# Routes anyone signed in may use: their own sign-in, sign-out, home page and password; the
# provider callbacks and the token sign-in authenticate by their own means.
OPEN_TO_ANY_USER = {
    "web:login", "web:logout", "web:home", "web:password_change", "web:signing_login_otp",
}
OPEN_PREFIXES = ("api/callbacks/", "api/auth/")
# The platform operator's own screens (entities and their credits, the SMS gateways).
OPERATOR_SCREENS = {"web:entity_list", "web:entity_create", "web:entity_edit", "web:messaging_operator_credits",
                    "web:gateway_list", "web:gateway_states", "web:gateway_create", "web:gateway_edit",
                    "web:gateway_route_add", "web:gateway_route_remove"}


@pytest.fixture
def two_books(client):
    mine = factories.make_entity(country="ZA")
    # South African too: the book holds payment-stream objects (DebiCheck, NAEDO notes), which only a
    # South African lender has; their client has a number of its own, as another lender's would.
    theirs = factories.make_entity(country="ZA")
    their_book = build_book(theirs, cellphone="083 987 6543")
    my_book = build_book(mine, marker="Mineowned")
    return mine, theirs, my_book, their_book


def _changes(entity) -> int:
    return AuditEntry.objects.filter(entity=entity).count()


def _lender_route_urls(owner):
    """(url, name) of every lender route outside the open and skipped ones, each object in its
    path taken from `owner`'s book."""
    for route, name, kwargs in _routes():
        if route.startswith(SKIP_PREFIXES) or route.startswith(OPEN_PREFIXES) or name in OPEN_TO_ANY_USER:
            continue
        values = {"format": "json"}
        for kwarg in [k for k in kwargs if k != "format"]:
            values[kwarg] = str(_object_of(_model_for_kwarg(kwarg), owner).pk)
        yield _url_for(route, name, values), name


def test_a_user_without_rights_gets_403_everywhere_and_changes_nothing(client, two_books):
    mine, theirs, my_book, their_book = two_books
    nobody = factories.make_user(entity=mine, rights=[])
    client.force_login(nobody)
    before = _changes(mine)
    answered = {}
    for url, name in _lender_route_urls(mine):
        statuses = {m: getattr(client, m)(url).status_code for m in ("get", "post")}
        statuses.update({m: getattr(client, m)(url, data="{}", content_type="application/json").status_code
                         for m in ("put", "patch", "delete")})
        if not set(statuses.values()) <= {403, 405} or set(statuses.values()) == {405}:
            answered[f"{url} ({name})"] = statuses
    # The export pages serve one's own job only: without one (none here) they answer 404.
    for name in ("web:messaging_export_job", "web:messaging_export_job_progress", "web:messaging_export_job_download"):
        assert answered.pop(f"{reverse(name)} ({name})", None) in (
            None, {"get": 404, "post": 405, "put": 405, "patch": 405, "delete": 405})
    assert not answered, "routes that answered a user holding no right:\n" + "\n".join(f"{k}: {v}" for k, v in answered.items())
    assert _changes(mine) == before, [e.action for e in AuditEntry.objects.filter(entity=mine).order_by("-pk")[:5]]


def test_the_platform_operator_reaches_no_lenders_data(client, two_books):
    """Operators run the platform and hold no entity: every lender route answers 403 (or 404/405)
    and no page shows a lender's data; only the operator's own screens and sign-in pages answer."""
    from tests.isolation_book import MARKER

    mine, theirs, my_book, their_book = two_books
    client.force_login(factories.make_operator())
    before = _changes(theirs)
    answered = {}
    for url, name in _lender_route_urls(theirs):
        responses = {m: getattr(client, m)(url) for m in ("get", "post")}
        for response in responses.values():
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert MARKER.lower().encode() not in body.lower(), f"{url} ({name}) shows a lender's data to the operator"
        statuses = {m: r.status_code for m, r in responses.items()}
        if name in OPERATOR_SCREENS:
            continue
        if not set(statuses.values()) <= {403, 404, 405} or set(statuses.values()) == {405}:
            answered[f"{url} ({name})"] = statuses
    assert not answered, "lender routes that answered the operator:\n" + "\n".join(f"{k}: {v}" for k, v in answered.items())
    assert _changes(theirs) == before


def _their_ids(theirs, my_book, their_book) -> dict:
    from imali.loans.models import Loan
    from imali.paystream.models import StreamAccount

    their_loan = Loan.objects.filter(entity=theirs).order_by("pk").first()
    return {
        "client": their_book["client"].pk, "loan": their_loan.pk, "loan_number": their_loan.pk,
        "product": their_book["product"].pk, "user": their_book["admin"].pk,
        "stream_account": StreamAccount.objects.filter(client__entity=theirs).order_by("pk").first().pk,
        "setup": their_book["providersetup"].pk, "custommessage": their_book["custommessage"].pk,
        "employer": their_book["employer"].pk, "region": theirs.regions.order_by("pk").first().pk,
        "branch": theirs.branches.first().pk, "role": theirs.roles.order_by("pk").first().pk, "outbox": their_book["outbox_message"].pk,
        "dataset_row": their_book["dataset"].rows.order_by("pk").first().pk if their_book["dataset"].rows.exists() else 1,
    }


def _web_probes(mine, my_book, ids) -> list[tuple[str, str, dict]]:
    from imali.loans.models import Loan

    my_client, my_loan = my_book["client"], Loan.objects.filter(entity=mine).order_by("pk").first()
    txn = my_book["providertransaction"]
    return [
        ("post", reverse("web:paystream_pay", kwargs={"client_id": my_client.pk}),
         {"account_1": ids["stream_account"], "amount_1": "10.00"}),
        ("post", reverse("web:paystream_mandate_create", kwargs={"loan_id": my_book["debicheck_mandate"].loan_id}),
         {"account": ids["stream_account"], "authentication": "tt3", "instalment_amount": "100.00",
          "maximum_collection": "100.00", "collection_day": "25", "first_collection_date": "2030-01-25"}),
        ("post", reverse("web:paystream_note_create", kwargs={"loan_id": my_loan.pk}),
         {"account": ids["stream_account"], "stream": "eft", "tracking_days": "0"}),
        ("post", reverse("web:mm_request_to_pay"), {"loan_reference": str(ids["loan_number"]), "amount": "5.00"}),
        ("post", reverse("web:mm_allocate", kwargs={"providertransaction_id": txn.pk}),
         {"loan_reference": str(ids["loan_number"])}),
        ("post", reverse("web:mm_statement_upload"), {"setup": ids["setup"]}),
        ("post", reverse("web:reminders_mis"), {"run_at": "07:00", "management_enabled": "on", "management_recipients": ids["user"]}),
        ("post", reverse("web:marketing_dataset_send", kwargs={"dataset_id": my_book["dataset"].pk}),
         {"message": ids["custommessage"], "recipients": "all", "idempotency_key": "probe", "send": "1"}),
        ("post", reverse("web:marketing_dataset_send", kwargs={"dataset_id": my_book["dataset"].pk}),
         {"message": my_book["custommessage"].pk, "recipients": "ticked", "row": ids["dataset_row"],
          "idempotency_key": "probe2", "send": "1"}),
        ("post", reverse("web:smsbank_sheets"), {"officer": ids["user"], "due_by": "2030-01-01"}),
        ("post", reverse("web:smsbank_pin"), {"client_number": "999999", "pin": "4826", "repeat": "4826"}),
        ("post", reverse("web:signing_mandate_create", kwargs={"loan_id": my_loan.pk}), {"account": ids["stream_account"]}),
        ("post", reverse("web:user_create"), {**_user_form("probe1"), "roles": ids["role"]}),
        ("post", reverse("web:user_create"), {**_user_form("probe2"), "home_branch": ids["branch"]}),
    ]


def _user_form(username: str) -> dict:
    return {"username": username, "first_name": "Probe", "last_name": "User", "cellphone": "0821234599",
            "password": "a-long-enough-passphrase-1", "password_confirm": "a-long-enough-passphrase-1",
            "is_active": "on", "disbursement_limit": "0"}


def _api_probes(mine, my_book, ids) -> list[tuple[str, str, dict]]:
    from imali.loans.models import Loan

    my_loan = Loan.objects.filter(entity=mine).order_by("pk").first()
    return [
        ("post", reverse("api:loan-list"), {"client": ids["client"], "product": my_book["product"].pk,
                                             "principal": "500", "instalments": 2}),
        ("post", reverse("api:loan-list"), {"client": my_book["client"].pk, "product": ids["product"],
                                             "principal": "500", "instalments": 2}),
        ("post", reverse("api:receipt-list"), {"loan": ids["loan"], "amount": "10.00", "value_date": "2026-01-06",
                                                "payback_type": "cash"}),
        ("post", reverse("api:mm-payment-allocate", kwargs={"providertransaction_id": my_book["providertransaction"].pk}),
         {"loan": ids["loan"]}),
        ("post", reverse("api:mm-request-to-pay-list"), {"loan": ids["loan"], "amount": "5.00"}),
        ("post", reverse("api:mm-disbursement-list"), {"loan": ids["loan"]}),
        ("post", reverse("api:paystream-payment-list"), {"client": ids["client"], "accounts": [
            {"account": ids["stream_account"], "amount": "10.00"}]}),
        ("post", reverse("api:paystream-payment-list"), {"client": my_book["client"].pk, "accounts": [
            {"account": ids["stream_account"], "amount": "10.00"}]}),
        ("post", reverse("api:paystream-note-list"), {"loan": my_loan.pk, "stream": "eft", "account": ids["stream_account"]}),
        ("post", reverse("api:paystream-mandate-list"), {"loan": my_book["debicheck_mandate"].loan_id,
                                                          "account": ids["stream_account"], "authentication": "tt3",
                                                          "first_collection_date": "2030-01-25"}),
        ("post", reverse("api:smsbanking-pin-list"), {"client": ids["client"], "pin": "4826"}),
        ("post", reverse("api:marketing-dataset-send", kwargs={"dataset_id": my_book["dataset"].pk}),
         {"message": ids["custommessage"], "idempotency_key": "probe-api"}),
        ("post", reverse("api:marketing-dataset-send-preview", kwargs={"dataset_id": my_book["dataset"].pk}),
         {"message": my_book["custommessage"].pk, "rows": [ids["dataset_row"]]}),
        ("post", reverse("api:marketing-datasets"), {"branch": ids["branch"]}),
        ("post", reverse("api:marketing-datasets"), {"salesperson": ids["user"]}),
        ("post", reverse("api:marketing-datasets"), {"created_by": ids["user"]}),
        ("post", reverse("api:marketing-datasets"), {"employer": ids["employer"]}),
        ("post", reverse("api:marketing-datasets"), {"region": ids["region"]}),
        ("post", reverse("api:messaging-batches-preview"), {"batch_type": "crm", "branch": ids["branch"]}),
        ("post", reverse("api:messaging-batches-preview"), {"batch_type": "new_loan", "employer": ids["employer"]}),
        ("post", reverse("api:messaging-batches"), {"batch_type": "crm", "branch": ids["branch"], "idempotency_key": "probe-b"}),
        ("put", reverse("api:reminders-mis"), {"run_at": "07:00", "management_enabled": True, "management_recipients": [ids["user"]]}),
        ("post", reverse("api:signing_mandate_create", kwargs={"loan_id": my_loan.pk}), {"account": ids["stream_account"]}),
    ]


def test_ids_in_forms_and_bodies_naming_another_entitys_rows_are_refused(client, two_books):
    mine, theirs, my_book, their_book = two_books
    me = factories.make_admin(entity=mine)
    client.force_login(me)
    ids = _their_ids(theirs, my_book, their_book)
    theirs_before = _changes(theirs)
    accepted = []
    for method, url, data in _web_probes(mine, my_book, ids):
        response = getattr(client, method)(url, data=data)
        if response.status_code not in (400, 403, 404):
            accepted.append(f"web {method} {url} {data}: {response.status_code}")
    for method, url, data in _api_probes(mine, my_book, ids):
        response = getattr(client, method)(url, data=data, content_type="application/json")
        if response.status_code not in (400, 403, 404):
            accepted.append(f"api {method} {url} {data}: {response.status_code} {response.content[:300]!r}")
    assert not accepted, "requests naming another entity's rows that were not refused:\n" + "\n".join(accepted)
    # Controls: the same forms with our own rows are accepted, so the refusals above were for the ids.
    from imali.reminders.models import MisRecipient
    from imali.tenancy.models import User

    assert client.post(reverse("web:user_create"), {**_user_form("probe3"), "roles": mine.roles.order_by("pk").first().pk,
                                                    "home_branch": mine.branches.first().pk}).status_code == 302
    assert User.objects.filter(username="probe3", entity=mine).exists()
    assert not User.objects.filter(username__in=["probe1", "probe2"]).exists()
    assert client.post(reverse("web:reminders_mis"), {"run_at": "07:00", "management_enabled": "on",
                                                      "management_recipients": me.pk}).status_code == 302
    assert list(MisRecipient.objects.filter(entity=mine).values_list("user_id", flat=True)) == [me.pk]
    assert _changes(theirs) == theirs_before, "the other entity's data changed"


# --- the mobile-money callbacks -------------------------------------------------------------------

def _confirmation(setup, *, trans_id: str, reference: str, msisdn: str = "27820000000", amount: str = "40.00") -> dict:
    return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20260105101500", "TransAmount": amount,
            "BusinessShortCode": setup.short_code, "BillRefNumber": reference, "InvoiceNumber": "",
            "OrgAccountBalance": "1.00", "ThirdPartyTransID": "", "MSISDN": msisdn, "FirstName": "Sam",
            "MiddleName": "", "LastName": "Doe"}


def _callback(client, setup, event: str, body: dict, *, token: str | None = None, setup_id=None, method="post", **extra):
    from imali.mobilemoney.services import CALLBACK_PATHS, callback_token

    query = {"setup": setup_id if setup_id is not None else setup.pk,
             "token": token if token is not None else callback_token(setup), **extra}
    return getattr(client, method)(f"/api/{CALLBACK_PATHS[event]}", data=body, content_type="application/json",
                                   QUERY_STRING="&".join(f"{k}={v}" for k, v in query.items()))


def test_one_entitys_mpesa_callback_cannot_pay_another_entitys_loan(client, two_books):
    from imali.loans.models import Loan, Receipt
    from imali.mobilemoney.models import ProviderTransaction, TransactionStatus
    from imali.mobilemoney.received import payments_received_post

    mine, theirs, my_book, their_book = two_books
    my_setup = my_book["providersetup"]
    their_loan = Loan.objects.filter(entity=theirs).order_by("pk").first()
    their_receipts = Receipt.objects.filter(loan__entity=theirs).count()
    theirs_before = _changes(theirs)
    # Validation answers another entity's loan number exactly as a number that does not exist.
    for_theirs = _callback(client, my_setup, "validation", _confirmation(my_setup, trans_id="V1", reference=f"L{their_loan.pk}"))
    for_nobody = _callback(client, my_setup, "validation", _confirmation(my_setup, trans_id="V2", reference="L99999999"))
    assert for_theirs.status_code == for_nobody.status_code == 200
    assert for_theirs.json() == for_nobody.json() and for_theirs.json()["ResultCode"] == "C2B00012"
    # A confirmation naming their loan (and their client's phone) is ours, in our suspense.
    for reference in (f"L{their_loan.pk}", str(their_loan.pk), str(their_loan.client.number)):
        trans_id = f"X{abs(hash(reference)) % 10**8:08d}"
        response = _callback(client, my_setup, "confirmation",
                             _confirmation(my_setup, trans_id=trans_id, reference=reference,
                                           msisdn=their_loan.client.cellphone.lstrip("+")))
        assert response.status_code == 200
        payments_received_post()
        txn = ProviderTransaction.objects.get(provider_transaction_id=trans_id)
        assert txn.entity_id == mine.pk
        assert txn.loan_id is None or txn.loan.entity_id == mine.pk
        if txn.loan_id is None:
            assert txn.status == TransactionStatus.SUSPENSE
    assert Receipt.objects.filter(loan__entity=theirs).count() == their_receipts
    assert _changes(theirs) == theirs_before


def test_forged_callbacks_are_refused_and_change_nothing(client, two_books):
    from imali.mobilemoney.models import Disbursement, ProviderSetup, ProviderTransaction
    from imali.mobilemoney.services import callback_token

    mine, theirs, my_book, their_book = two_books
    my_setup, their_setup = my_book["providersetup"], their_book["providersetup"]
    stored = ProviderTransaction.objects.count()
    theirs_before = _changes(theirs)
    body = _confirmation(their_setup, trans_id="FORGED01", reference="nobody")
    # Their setup id with our token, ours with theirs, no token, a token one character off.
    assert _callback(client, their_setup, "confirmation", body, token=callback_token(my_setup)).status_code == 403
    assert _callback(client, my_setup, "confirmation", _confirmation(my_setup, trans_id="FORGED02", reference="nobody"),
                     token=callback_token(their_setup)).status_code == 403
    assert _callback(client, their_setup, "confirmation", body, token="").status_code == 403
    good = callback_token(their_setup)
    assert _callback(client, their_setup, "confirmation", body, token=good[:-1] + ("0" if good[-1] != "0" else "1")).status_code == 403
    # A setup of the other provider kind, with its own token, is not an M-PESA endpoint's.
    their_momo = ProviderSetup.objects.get(entity=theirs, provider="momo")
    assert _callback(client, their_momo, "confirmation", body).status_code == 403
    assert ProviderTransaction.objects.count() == stored
    # Results and time-outs of our setup cannot touch their disbursement.
    theirs_disbursement = their_book["disbursement"]
    before = Disbursement.objects.filter(pk=theirs_disbursement.pk).values().get()
    result = {"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok",
                         "OriginatorConversationID": str(theirs_disbursement.originator_id), "ConversationID": "c",
                         "TransactionID": "FORGEDB2C", "ResultParameters": {"ResultParameter": [
                             {"Key": "TransactionAmount", "Value": str(theirs_disbursement.amount)},
                             {"Key": "TransactionReceipt", "Value": "FORGEDB2C"}]}}}
    assert _callback(client, my_setup, "result", result).status_code == 200
    assert _callback(client, my_setup, "result", result, status="1", originator=str(theirs_disbursement.originator_id)).status_code == 200
    assert _callback(client, my_setup, "timeout", result).status_code == 200
    assert Disbursement.objects.filter(pk=theirs_disbursement.pk).values().get() == before
    # MoMo callbacks of our setup naming their request to pay are no prompt to read theirs.
    from imali.mobilemoney.models import CollectionRequest

    their_request = their_book["collectionrequest"]
    my_momo = ProviderSetup.objects.get(entity=mine, provider="momo")
    before = CollectionRequest.objects.filter(pk=their_request.pk).values().get()
    for method in ("put", "post"):
        assert _callback(client, my_momo, "collection", {"referenceId": str(their_request.reference_id),
                                                         "status": "SUCCESSFUL"}, method=method).status_code == 200
    assert _callback(client, my_momo, "collection", {}, method="put", reference=str(their_request.reference_id)).status_code == 200
    assert CollectionRequest.objects.filter(pk=their_request.pk).values().get() == before
    assert _changes(theirs) == theirs_before


# --- OTP entry points ------------------------------------------------------------------------------

def _sign_mandate_page(mandate):
    return reverse("web:signing_mandate", kwargs={"mandate_id": mandate.pk})


def _signed(document) -> bool:
    from imali.signing.models import Signature

    return Signature.objects.filter(loan=document.loan, mandate=document.mandate).exists()


@pytest.fixture
def signer(client, two_books):
    """Our admin signed in, and our mandate waiting for the client's code (sent by the book)."""
    from imali.signing import services as signing

    mine, theirs, my_book, their_book = two_books
    me = factories.make_admin(entity=mine)
    client.force_login(me)
    mandate = my_book["mandate"]
    return me, signing.Document(loan=mandate.loan, mandate=mandate), my_book["signing_challenge"]


def test_another_entitys_challenge_and_code_sign_nothing_here_and_stay_unused_there(client, two_books, signer):
    from imali.signing import services as signing
    from imali.signing.models import Challenge
    from imali.signing.testing import code_from_outbox

    mine, theirs, my_book, their_book = two_books
    me, document, _ = signer
    theirs_pending = their_book["signing_challenge"]
    theirs_code = code_from_outbox(theirs_pending)
    theirs_before = _changes(theirs)
    response = client.post(_sign_mandate_page(document.mandate), {"action": "verify", "challenge": theirs_pending.public_id,
                                                                  "code": theirs_code})
    assert response.status_code == 400
    assert not _signed(document)
    api = client.post(reverse("api:mandate_signing_verify", kwargs={"mandate_id": document.mandate.pk}),
                      data={"challenge": theirs_pending.public_id, "code": theirs_code}, content_type="application/json")
    assert api.status_code == 400 and not _signed(document)
    theirs_pending.refresh_from_db()
    assert theirs_pending.status == "pending" and theirs_pending.attempts == 0
    assert _changes(theirs) == theirs_before
    their_document = signing.Document(loan=their_book["mandate"].loan, mandate=their_book["mandate"])
    assert not _signed(their_document)
    assert not Challenge.objects.filter(entity=mine, public_id=theirs_pending.public_id).exists()


@pytest.fixture
def roomy_send_limit(settings):
    """The books already sent several codes to the one test cellphone: room for the probe's own."""
    settings.IMALI_OTP_SEND_PER_PHONE = 50


def test_a_code_sent_for_one_document_does_not_sign_another(client, two_books, signer, roomy_send_limit):
    import datetime as dt

    from imali.loans.services import loan_apply
    from imali.signing import services as signing
    from imali.signing.testing import code_from_outbox

    mine, theirs, my_book, their_book = two_books
    me, mandate_document, _ = signer
    loan = loan_apply(entity=mine, actor=me, client=my_book["client"], product=my_book["product"], principal="1000",
                      instalments=3, applied_on=dt.date(2026, 1, 5))
    loan_document = signing.Document(loan=loan)
    challenge = signing.document_otp_send(actor=me, entity=mine, document=loan_document)
    code = code_from_outbox(challenge)
    # The loan's code on the mandate's page (screen and API): refused, the mandate unsigned.
    response = client.post(_sign_mandate_page(mandate_document.mandate), {"action": "verify", "challenge": challenge.public_id,
                                                                          "code": code})
    assert response.status_code == 400 and not _signed(mandate_document)
    api = client.post(reverse("api:mandate_signing_verify", kwargs={"mandate_id": mandate_document.mandate.pk}),
                      data={"challenge": challenge.public_id, "code": code}, content_type="application/json")
    assert api.status_code == 400 and not _signed(mandate_document)
    # ... and still good for the loan it was sent for, once; used again it is refused.
    signed = client.post(reverse("web:signing_loan", kwargs={"loan_id": loan.pk}),
                         {"action": "verify", "challenge": challenge.public_id, "code": code})
    assert signed.status_code == 302 and _signed(loan_document)
    again = client.post(reverse("web:signing_loan", kwargs={"loan_id": loan.pk}),
                        {"action": "verify", "challenge": challenge.public_id, "code": code})
    assert again.status_code == 400
    api_again = client.post(reverse("api:loan_signing_verify", kwargs={"loan_id": loan.pk}),
                            data={"challenge": challenge.public_id, "code": code}, content_type="application/json")
    assert api_again.status_code == 400
    from imali.signing.models import Signature

    assert Signature.objects.filter(loan=loan, mandate=None).count() == 1


def _wrong(code: str) -> str:
    return "".join(str((int(c) + 1) % 10) for c in code)


def test_guessing_a_signing_code_stops_at_the_tries_per_code(client, two_books, signer):
    from imali.signing.models import Challenge
    from imali.signing.testing import code_from_outbox

    mine, theirs, my_book, their_book = two_books
    me, document, challenge = signer
    code = code_from_outbox(challenge)
    tries = challenge.max_attempts
    statuses = [client.post(_sign_mandate_page(document.mandate), {"action": "verify", "challenge": challenge.public_id,
                                                                   "code": _wrong(code)}).status_code
                for _ in range(tries)]
    assert statuses == [400] * tries
    challenge.refresh_from_db()
    assert challenge.status == "exhausted"
    # The right code now signs nothing, on the screen or through the API.
    assert client.post(_sign_mandate_page(document.mandate), {"action": "verify", "challenge": challenge.public_id,
                                                              "code": code}).status_code == 400
    assert client.post(reverse("api:mandate_signing_verify", kwargs={"mandate_id": document.mandate.pk}),
                       data={"challenge": challenge.public_id, "code": code}, content_type="application/json").status_code == 400
    assert not _signed(document)
    assert Challenge.objects.get(pk=challenge.pk).attempts == tries


def test_guessing_the_sign_in_code_stops_at_the_tries_per_code(client, two_books, roomy_send_limit):
    from imali.signing.models import Challenge
    from imali.signing.services import otp_setup_update
    from imali.signing.testing import code_from_outbox

    mine, theirs, my_book, their_book = two_books
    otp_setup_update(actor=my_book["admin"], entity=mine, data={"user_otp": True})
    factories.make_user(entity=mine, username="guessed", rights=[])
    response = client.post(reverse("web:login"), {"username": "guessed", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == reverse("web:signing_login_otp")
    challenge = Challenge.objects.get(purpose="login", user__username="guessed", status="pending")
    code = code_from_outbox(challenge)
    for _ in range(challenge.max_attempts):
        # The posted challenge id is not the session's one: the session's is what counts.
        assert client.post(reverse("web:signing_login_otp"), {"challenge": "x", "code": _wrong(code)}).status_code == 400
    challenge.refresh_from_db()
    assert challenge.status == "exhausted"
    assert client.post(reverse("web:signing_login_otp"), {"challenge": challenge.public_id, "code": code}).status_code == 400
    assert client.get(reverse("web:signing_loans")).status_code == 302  # still not signed in
    # The API's token sign-in counts against the same code: no fresh tries there.
    api = client.post(reverse("api:auth-token"), data={"username": "guessed", "password": "correct-horse-battery",
                                                       "challenge": challenge.public_id, "code": code},
                      content_type="application/json")
    assert api.status_code == 400 and "token" not in api.json()


def test_ids_in_query_strings_show_nothing_of_another_entity(client, two_books):
    """Every route without an object in its path, asked with each filter or poller parameter naming
    another entity's row (?client=, ?loan=, ?user=, ?id=, ...): never a page showing that row."""
    from imali.loans.models import Loan
    from tests.isolation_book import MARKER

    mine, theirs, my_book, their_book = two_books
    client.force_login(factories.make_admin(entity=mine))
    their_loan = Loan.objects.filter(entity=theirs).order_by("pk").first()
    ids = _their_ids(theirs, my_book, their_book)
    params = {"client": ids["client"], "loan": their_loan.pk, "user": ids["user"], "officer": ids["user"],
              "branch": ids["branch"], "setup": ids["setup"], "id": ids["outbox"], "dataset": their_book["dataset"].pk,
              "account": ids["stream_account"], "salesperson": ids["user"], "created_by": ids["user"],
              "employer": their_book["employer"].pk, "mandate": their_book["debicheck_mandate"].pk,
              "batch": their_book["message_batch"].pk, "job": "1", "row": ids["dataset_row"]}
    leaks, asked = [], 0
    for route, name, kwargs in _routes():
        if route.startswith(SKIP_PREFIXES) or route.startswith("api/callbacks/") or [k for k in kwargs if k != "format"]:
            continue
        url = _url_for(route, name, {})
        for key, value in params.items():
            response = client.get(f"{url}?{key}={value}")
            asked += 1
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if MARKER.lower().encode() in body.lower():
                leaks.append(f"{url}?{key}={value} ({name}) status {response.status_code}")
    # And the object routes' own pollers and filters, on our own objects.
    my_client = my_book["client"]
    for url in (reverse("web:messaging_client_sms_status", kwargs={"client_id": my_client.pk}),
                reverse("web:smsbank_sheets"), reverse("web:smsbank_pin")):
        for key, value in params.items():
            response = client.get(f"{url}?{key}={value}")
            asked += 1
            if MARKER.lower().encode() in response.content.lower():
                leaks.append(f"{url}?{key}={value} status {response.status_code}")
    # The live pollers answer only ids and statuses: their message's id answers as one that does not exist.
    for url in (reverse("web:messaging_client_sms_status", kwargs={"client_id": my_client.pk}),
                reverse("web:messaging_outbox_status")):
        theirs_answer = client.get(f"{url}?id={ids['outbox']}")
        none_answer = client.get(f"{url}?id=999999999")
        assert theirs_answer.status_code == none_answer.status_code == 200
        assert theirs_answer.content.replace(str(ids["outbox"]).encode(), b"N") == none_answer.content.replace(b"999999999", b"N")
        assert str(ids["outbox"]).encode() not in theirs_answer.content
    assert asked > 100
    assert not leaks, "pages that showed another entity's data for an id in the query string:\n" + "\n".join(leaks)


def test_a_statement_of_our_setup_naming_their_loans_matches_nothing_of_theirs(client, two_books):
    """Statement import (the API's upload and the screen's confirm): lines naming another entity's
    loan (L<number>) or paid from its client's phone are unmatched here, and post nothing there.
    (A bare number is a client number of our own entity, rightly matched here.)"""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imali.loans.models import Loan, Receipt

    mine, theirs, my_book, their_book = two_books
    client.force_login(factories.make_admin(entity=mine))
    their_loan = Loan.objects.filter(entity=theirs).order_by("pk").first()
    content = ("Receipt No.,Completion Time,Transaction Status,Paid In,Other Party Info,A/C No.\n"
               f"PROBE00001,2026-01-05 10:00:00,Completed,10.00,27820000000 - A B,L{their_loan.pk}\n"
               f"PROBE00002,2026-01-05 10:05:00,Completed,11.00,{their_loan.client.cellphone.lstrip('+')} - A B,\n").encode()
    receipts_before, theirs_before = Receipt.objects.filter(loan__entity=theirs).count(), _changes(theirs)
    response = client.post(reverse("api:mm-statement-list"), data={
        "setup": my_book["providersetup"].pk, "file": SimpleUploadedFile("probe.csv", content, content_type="text/csv")})
    assert response.status_code == 201, response.content
    assert response.json()["counts"].get("matched", 0) == 0
    statement_id = response.json()["statement"]["id"]
    # Their setup named in the upload is refused as unknown.
    refused = client.post(reverse("api:mm-statement-list"), data={
        "setup": their_book["providersetup"].pk, "file": SimpleUploadedFile("probe.csv", content, content_type="text/csv")})
    assert refused.status_code == 400 and "setup" in refused.json()
    client.post(reverse("web:mm_statement_confirm", kwargs={"statementimport_id": statement_id}))
    assert Receipt.objects.filter(loan__entity=theirs).count() == receipts_before
    assert _changes(theirs) == theirs_before


def test_one_clients_enrolment_code_does_not_enrol_another(client, two_books, roomy_send_limit):
    from imali.signing import services as signing
    from imali.signing.models import Enrolment
    from imali.signing.testing import code_from_outbox

    mine, theirs, my_book, their_book = two_books
    me = factories.make_admin(entity=mine)
    client.force_login(me)
    first = factories.make_client(entity=mine, actor=me, cellphone="0825550141")
    second = factories.make_client(entity=mine, actor=me, cellphone="0825550142")
    sent = signing.enrolment_send(actor=me, entity=mine, client=first)
    signing.enrolment_send(actor=me, entity=mine, client=second)
    code = code_from_outbox(sent)
    for response in (
        client.post(reverse("web:signing_enrolment", kwargs={"client_id": second.pk}),
                    {"action": "verify", "challenge": sent.public_id, "code": code}),
        client.post(reverse("api:signing_enrolment_verify", kwargs={"client_id": second.pk}),
                    data={"challenge": sent.public_id, "code": code}, content_type="application/json"),
        # Their client's page with our code: not even theirs to look at.
        client.post(reverse("web:signing_enrolment", kwargs={"client_id": their_book["client"].pk}),
                    {"action": "verify", "challenge": sent.public_id, "code": code}),
    ):
        assert response.status_code in (400, 404)
    assert not Enrolment.objects.filter(client=second).exists()
    # The code still enrols the client it was sent for.
    assert client.post(reverse("web:signing_enrolment", kwargs={"client_id": first.pk}),
                       {"action": "verify", "challenge": sent.public_id, "code": code}).status_code == 302
    assert Enrolment.objects.get(client=first, is_active=True).cellphone == first.cellphone
