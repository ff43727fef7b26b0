"""Officer collections by SMS (grammar, unverified until the branch confirms, duplicates),
collection-sheet codes (expiry, reuse, wrong codes) and mobile-money payment notices."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from imali.core.models import AuditEntry
from imali.loans.models import Loan, PaybackType, Receipt
from imali.messaging.inbound import inbound_receive
from imali.messaging.models import OutboxMessage
from imali.smsbanking import rules, services
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import (
    CollectionSheet,
    CollectionStatus,
    FieldCollection,
    ProviderPayment,
)
from imali.tenancy.rights import Right
from tests import factories

from .conftest import CLIENT_PHONE, OFFICER_PHONE, OTHER_PHONE, make_client, make_loan

_ids = itertools.count(1)


def mo(number, text):
    message, _ = inbound_receive(gateway="test", provider_id=f"c{next(_ids)}", number=number, text=text, to_address="Imali")
    answer_pending()  # the answering worker's pass
    message.refresh_from_db()
    return message


def last_reply(number):
    return OutboxMessage.objects.filter(number=number).latest("id").text


@pytest.fixture
def second(bank, manager, officer, product):
    client = make_client(bank, cellphone="+27825550102", name="Naledi", salesperson=officer,
                         id_number=factories.SA_IDS[2][0], date_of_birth=factories.SA_IDS[2][1], gender="F")
    make_loan(entity=bank, actor=manager, client=client, product=product, principal="2000", days_ago=40)
    return client


@pytest.mark.parametrize(("text", "expected"), [
    ("1001 250", [(1001, None, "250.00")]),
    ("1001 250, 1002/17 100.50; 1003 80", [(1001, None, "250.00"), (1002, 17, "100.50"), (1003, None, "80.00")]),
])
def test_grammar_reads_entries(text, expected):
    entries = rules.parse_collection(text.split())
    assert [(e.client_number, e.loan_id, str(e.amount)) for e in entries] == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "Nothing to record"),
    ("1001", "must be <client>"),
    ("1001 250 extra", "must be <client>"),
    ("abc 250", "not a client number"),
    ("1001 2.505", "not an amount"),
    ("1001 -5", "not an amount"),
    ("1001 1e3", "not an amount"),
    ("1001 250, 1001 100", "twice"),
    (", ".join(f"{1000 + i} 10" for i in range(21)), "At most 20"),
])
def test_grammar_refuses_with_a_clear_reason(text, message):
    with pytest.raises(rules.GrammarError, match=message):
        rules.parse_collection(text.split())


def test_officer_records_several_payments_unverified(bank, officer, borrower, second):
    loans = list(Loan.objects.filter(client=borrower).order_by("id"))
    mo(OFFICER_PHONE, f"PAY {borrower.number}/{loans[0].pk} 250, {borrower.number}/{loans[1].pk} 100.50, {second.number} 80")
    rows = list(FieldCollection.objects.order_by("id"))
    assert [(r.loan_id, r.amount, r.status) for r in rows] == [
        (loans[0].pk, Decimal("250.00"), CollectionStatus.UNVERIFIED), (loans[1].pk, Decimal("100.50"), CollectionStatus.UNVERIFIED),
        (Loan.objects.get(client=second).pk, Decimal("80.00"), CollectionStatus.UNVERIFIED)]
    assert not Receipt.objects.exists()  # nothing posted before the cash is at the branch
    assert "recorded 3 payments" in last_reply(OFFICER_PHONE) and "ZAR 430.50" in last_reply(OFFICER_PHONE)
    assert OutboxMessage.objects.filter(number=CLIENT_PHONE).count() == 2
    assert "ZAR 80.00" in last_reply("+27825550102")
    assert AuditEntry.objects.filter(action="smsbanking.collection_recorded").count() == 3


def test_malformed_or_ambiguous_message_records_nothing(bank, officer, borrower, second):
    mo(OFFICER_PHONE, f"PAY {borrower.number} 250")  # two open loans: which one?
    assert "2 open loans" in last_reply(OFFICER_PHONE) and "Nothing recorded" in last_reply(OFFICER_PHONE)
    mo(OFFICER_PHONE, f"PAY {second.number} 80, 999999 10")
    assert "no client 999999" in last_reply(OFFICER_PHONE)
    mo(OFFICER_PHONE, f"PAY {second.number} 999999")
    assert "more than loan" in last_reply(OFFICER_PHONE)
    assert not FieldCollection.objects.exists()


def test_duplicate_message_records_nothing(bank, officer, second):
    mo(OFFICER_PHONE, f"PAY {second.number} 80")
    mo(OFFICER_PHONE, f"pay {second.number}   80.00")
    assert FieldCollection.objects.count() == 1
    assert "same payments today already" in last_reply(OFFICER_PHONE)


def test_only_an_officer_phone_with_the_right_records(bank, officer, second):
    mo(OTHER_PHONE, f"PAY {second.number} 80")
    assert "only a loan officer" in last_reply(OTHER_PHONE)
    officer.roles.clear()
    mo(OFFICER_PHONE, f"PAY {second.number} 80")
    assert "may not capture receipts" in last_reply(OFFICER_PHONE)
    assert not FieldCollection.objects.exists()


def test_branch_confirms_through_the_receipt_service_or_rejects(bank, manager, officer, second):
    mo(OFFICER_PHONE, f"PAY {second.number} 80")
    mo(OFFICER_PHONE, f"PAY {second.number} 20")
    first, other = FieldCollection.objects.order_by("id")
    confirmed = services.collection_confirm(actor=manager, entity=bank, collection_id=first.pk)
    receipt = confirmed.receipt
    assert (receipt.amount, receipt.payback_type, receipt.external_reference) == (Decimal("80.00"), PaybackType.CASH, f"FIELD-{first.pk}")
    assert "is confirmed" in last_reply("+27825550102")
    with pytest.raises(ValidationError, match="confirmed already"):
        services.collection_confirm(actor=manager, entity=bank, collection_id=first.pk)
    with pytest.raises(ValidationError, match="Say why"):
        services.collection_reject(actor=manager, entity=bank, collection_id=other.pk, reason=" ")
    services.collection_reject(actor=manager, entity=bank, collection_id=other.pk, reason="No cash handed in")
    assert "No cash handed in" in last_reply(OFFICER_PHONE)
    assert AuditEntry.objects.filter(action="smsbanking.collection_confirmed").count() == 1
    assert AuditEntry.objects.filter(action="smsbanking.collection_rejected").count() == 1
    clerk = factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS])
    with pytest.raises(PermissionDenied):
        services.collection_confirm(actor=clerk, entity=bank, collection_id=other.pk)


def test_sheet_code_records_the_whole_sheet_once(bank, manager, officer, borrower, second):
    today = timezone.localdate()
    sheet = services.sheet_issue(actor=manager, entity=bank, officer=officer, due_by=today + dt.timedelta(days=40))
    lines = list(sheet.lines.all())
    assert {line.client_id for line in lines} == {borrower.pk, second.pk} and len(lines) == 3
    assert sheet.code in last_reply(OFFICER_PHONE)
    mo(OFFICER_PHONE, "XXXXXX")  # not a code shape: unknown
    mo(OFFICER_PHONE, "A3B4C6" if sheet.code != "A3B4C6" else "A3B4C7")
    assert "not a code of one of your sheets" in last_reply(OFFICER_PHONE)
    assert not FieldCollection.objects.exists()
    mo(OFFICER_PHONE, sheet.code.lower())
    rows = list(FieldCollection.objects.all())
    assert sorted(r.amount for r in rows) == sorted(line.amount for line in lines)
    assert all(r.status == CollectionStatus.UNVERIFIED and r.message.source == "sheet_code" for r in rows)
    mo(OFFICER_PHONE, sheet.code)
    assert "recorded already" in last_reply(OFFICER_PHONE) and FieldCollection.objects.count() == 3


def test_expired_sheet_code_records_nothing(bank, manager, officer, borrower):
    sheet = services.sheet_issue(actor=manager, entity=bank, officer=officer, due_by=timezone.localdate() + dt.timedelta(days=40))
    CollectionSheet.objects.filter(pk=sheet.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    mo(OFFICER_PHONE, sheet.code)
    assert "expired" in last_reply(OFFICER_PHONE) and not FieldCollection.objects.exists()


def test_another_officers_code_is_wrong(bank, manager, officer, borrower):
    sheet = services.sheet_issue(actor=manager, entity=bank, officer=officer, due_by=timezone.localdate() + dt.timedelta(days=40))
    other = factories.make_user(entity=bank, rights=[Right.CAPTURE_RECEIPTS])
    other.cellphone = "+27825550333"
    other.save()
    mo("+27825550333", sheet.code)
    assert "not a code of one of your sheets" in last_reply("+27825550333") and not FieldCollection.objects.exists()


NOTICE = "You have received PHP 150.00 from {phone}. Ref: GC{ref}"


def test_payment_notice_is_unverified_until_the_branch_confirms(bank, manager, second):
    provider = services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    mo("2882", NOTICE.format(phone="0825550102", ref="778812"))
    payment = ProviderPayment.objects.get()
    # A forgeable sender ID posts nothing and tells the client nothing by itself.
    assert payment.status == CollectionStatus.UNVERIFIED and payment.receipt is None and not Receipt.objects.exists()
    assert payment.client == second and payment.loan is not None
    assert not OutboxMessage.objects.filter(number="+27825550102").exists()
    mo("2882", NOTICE.format(phone="0825550102", ref="778812"))  # the same notice again
    assert ProviderPayment.objects.count() == 1
    done = services.provider_payment_confirm(actor=manager, entity=bank, payment_id=payment.pk)
    assert done.status == CollectionStatus.CONFIRMED and done.receipt.amount == Decimal("150.00")
    assert done.receipt.payback_type == PaybackType.MOBILE_MONEY and done.receipt.external_reference == "GC778812"
    assert "we received ZAR 150.00 by G-Cash" in last_reply("+27825550102")
    assert AuditEntry.objects.filter(action="smsbanking.provider_payment_confirmed").count() == 1
    with pytest.raises(ValidationError, match="confirmed already"):  # once per reference
        services.provider_payment_confirm(actor=manager, entity=bank, payment_id=payment.pk)
    assert Receipt.objects.count() == 1
    mo("2882", NOTICE.format(phone="0825550177", ref="778813"))  # nobody's phone: kept for the branch
    kept = ProviderPayment.objects.get(reference="GC778813")
    assert kept.outcome == "no client with that phone" and kept.status == CollectionStatus.UNVERIFIED
    with pytest.raises(ValidationError, match="no single open loan"):
        services.provider_payment_confirm(actor=manager, entity=bank, payment_id=kept.pk)
    services.provider_payment_reject(actor=manager, entity=bank, payment_id=kept.pk, reason="Not on the statement")
    kept.refresh_from_db()
    assert kept.status == CollectionStatus.REJECTED and Receipt.objects.count() == 1
    assert provider.payments.count() == 2


def test_payment_notice_sent_elsewhere_than_the_service_address_is_ignored(bank, manager, second):
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    inbound_receive(gateway="test", provider_id=f"c{next(_ids)}", number="2882", to_address="+27820000000",
                    text=NOTICE.format(phone="0825550102", ref="990001"))
    answer_pending()
    assert not ProviderPayment.objects.exists() and not Receipt.objects.exists()


def test_payment_confirm_needs_the_right(bank, manager, second):
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    mo("2882", NOTICE.format(phone="0825550102", ref="778812"))
    clerk = factories.make_user(entity=bank, rights=[Right.VIEW_CLIENTS])
    with pytest.raises(PermissionDenied):
        services.provider_payment_confirm(actor=clerk, entity=bank, payment_id=ProviderPayment.objects.get().pk)
    assert not Receipt.objects.exists()


def test_provider_pattern_needs_the_named_groups(bank, manager):
    with pytest.raises(ValidationError, match="named groups"):
        services.provider_save(actor=manager, entity=bank, name="X", sender="2882", pattern=r"(?P<amount>\d+)")
    with pytest.raises(ValidationError, match="Not a valid pattern"):
        services.provider_save(actor=manager, entity=bank, name="X", sender="2882", pattern=r"(")


@pytest.mark.parametrize("pattern", [
    r"(?P<amount>[0-9]+) from (?P<phone>(?:[0-9]+)+) ref (?P<ref>\w+)",
    r"(?P<amount>[0-9]+) from (?P<phone>[0-9]+) ref (?P<ref>(\w*-?)*)",
    r"(?P<amount>[0-9]+) (?:from (?P<phone>[0-9]+ )*)+ref (?P<ref>\w+)",
])
def test_provider_pattern_with_nested_repeats_is_refused(bank, manager, pattern):
    with pytest.raises(ValidationError, match="may not itself repeat"):
        services.provider_save(actor=manager, entity=bank, name="X", sender="2882", pattern=pattern)


def test_notice_with_an_optional_group_left_out_is_unreadable(bank, manager, second):
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882",
                           pattern=r"received (?P<amount>[0-9.]+)(?: from (?P<phone>[0-9]+))?\. Ref: (?P<ref>\w+)")
    message = mo("2882", "You have received 150.00. Ref: GC1")
    from imali.smsbanking.models import BankingRequest

    assert BankingRequest.objects.get(inbound=message).outcome == "notice_unreadable"
    assert not ProviderPayment.objects.exists()


def test_notice_is_read_within_its_first_characters(bank, manager, second):
    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    mo("2882", "x" * services.NOTICE_SCAN + NOTICE.format(phone="0825550102", ref="4711"))
    assert not ProviderPayment.objects.exists()


def test_payment_seen_by_another_channel_is_not_posted_twice(bank, manager, second):
    from imali.loans.services import local_today, receipt_post

    services.provider_save(actor=manager, entity=bank, name="G-Cash", sender="2882", pattern=services.SAMPLE_PATTERN)
    loan = Loan.objects.get(client=second)
    # The same payment came first through the provider's C2B callback (mobilemoney keys it by the
    # bare provider reference).
    earlier = receipt_post(entity=bank, actor=manager, loan=loan, amount=Decimal("150.00"), value_date=local_today(bank),
                           payback_type=PaybackType.MOBILE_MONEY, external_reference="GC778812")
    mo("2882", NOTICE.format(phone="0825550102", ref="778812"))
    payment = ProviderPayment.objects.get()
    with pytest.raises(ValidationError, match=f"already receipt {earlier.pk}"):
        services.provider_payment_confirm(actor=manager, entity=bank, payment_id=payment.pk)
    assert Receipt.objects.filter(loan=loan).count() == 1
    payment.refresh_from_db()
    assert payment.status == CollectionStatus.UNVERIFIED
