"""The demo logins load_demo prints can do what it says each is for, on the loaded demo book; and
the demo book has had its daily close, so a client months in arrears is not shown as Good."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from imali.clients.models import Client, ClientStatus
from imali.clients.services import client_account_add, client_create
from imali.demo.demo_data import DEMO_LOGINS, JOURNEYS
from imali.loans.models import Instalment, Loan, LoanStatus, Product
from imali.loans.rules import BAD_AFTER_DAYS
from imali.loans.services import loan_apply, loan_approve, loan_disburse, local_today, receipt_post
from imali.messaging.services import single_sms_send
from imali.signing import services as signing
from imali.signing.models import SignatureMethod
from imali.signing.testing import code_from_outbox
from imali.tenancy.models import Entity, User

PAGES = {
    "clients": ("web:client_create",),
    "reports": ("web:signing_contracts", "web:signing_otp_audit", "web:signing_login_detail"),
    "email": ("web:messaging_email_templates",),
    "batches": ("web:batches",),
    "marketing": ("web:marketing", "web:marketing_logs", "web:marketing_messages"),
}


def _load() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def _new_client(entity: Entity, actor: User, n: int) -> Client:
    client = client_create(entity=entity, actor=actor, data={
        "branch": entity.branches.order_by("code").first(), "title": "Ms", "full_names": "Journey Test",
        "surname": f"Walker{n}", "id_type": "national_id" if entity.country != "ZA" else "passport",
        "id_number": f"JT{n:07d}", "date_of_birth": dt.date(1990, 1, 1), "gender": "F",
        "cellphone": f"+27825559{n:03d}" if entity.country == "ZA" else f"+264815559{n:03d}",
    })
    client_account_add(client=client, actor=actor, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": f"12345{n:05d}", "account_type": "savings"})
    return client


def _journey(login, user: User, admin: User, n: int) -> None:
    """Drive the services the login's journeys use, as that user; an administrator approves where
    the login may not (the four-eyes rule)."""
    entity = user.entity
    journeys = login.journeys
    client = _new_client(entity, user if "clients" in journeys else admin, n)
    if "sign" in journeys:
        challenge = signing.enrolment_send(actor=user, entity=entity, client=client)
        signing.enrolment_verify(actor=user, entity=entity, client=client, challenge_id=challenge.public_id,
                                 code=code_from_outbox(challenge))
    if "apply" not in journeys:
        return
    # The biggest loan the login may pay out, on a product that lends it.
    product = (Product.objects.filter(entity=entity, max_principal__gte=login.disbursement_limit).first()
               or Product.objects.filter(entity=entity).order_by("-max_principal").first())
    principal = min(login.disbursement_limit, product.max_principal)
    loan = loan_apply(entity=entity, actor=user, client=client, product=product, principal=principal,
                      instalments=product.max_instalments)
    loan_approve(loan=loan, actor=user if "approve" in journeys else admin)
    if "sign" in journeys:
        document = signing.Document(loan=Loan.objects.get(pk=loan.pk))
        challenge = signing.document_otp_send(actor=user, entity=entity, document=document)
        signature = signing.document_otp_verify(actor=user, entity=entity, document=document,
                                                challenge_id=challenge.public_id, code=code_from_outbox(challenge))
        assert signature.method == SignatureMethod.OTP
    if "disburse" in journeys:
        loan = loan_disburse(loan=Loan.objects.get(pk=loan.pk), actor=user, payout_account=client.accounts.first(),
                             disbursed_on=local_today(entity))
        assert loan.status == LoanStatus.ACTIVE
    if "receipts" in journeys:
        receipt_post(entity=entity, actor=user, loan=Loan.objects.get(pk=loan.pk), amount="100.00",
                     value_date=local_today(entity), payback_type="cash")
    if "sms" in journeys:
        single_sms_send(actor=user, entity=entity, client=client, idempotency_key=str(uuid.uuid4()), text="Hello from the demo")
    if "batches" in journeys:
        from imali.batches.services import batch_preview

        assert batch_preview(actor=user, entity=entity, batch_type="crm_loan_status", criteria={"loan_status": "active"}).selected
    if "marketing" in journeys:
        from imali.marketing.services import dataset_start

        dataset = dataset_start(actor=user, entity=entity, filters={}, background=False)
        assert dataset.state == "done" and dataset.row_count, dataset.error


@pytest.mark.django_db
def test_each_printed_login_can_do_what_load_demo_says_it_is_for(client):
    output = _load()
    for n, login in enumerate(DEMO_LOGINS):
        assert f"{login.username}" in output and login.purpose in output, login.username
        user = User.objects.get(username=login.username)
        if login.entity_code is None:
            assert user.is_operator
            continue
        assert user.disbursement_limit == login.disbursement_limit > Decimal("0.00")
        for journey in login.journeys:
            for right in JOURNEYS[journey][1]:
                assert user.has_right(right), (login.username, journey, right)
        admin = User.objects.get(username=next(x.username for x in DEMO_LOGINS
                                               if x.entity_code == login.entity_code and "approve" in x.journeys))
        _journey(login, user, admin, n)
        assert client.login(username=login.username, password=login.password)
        for journey in login.journeys:
            for name in PAGES.get(journey, ()):
                assert client.get(reverse(name)).status_code == 200, (login.username, name)
        client.logout()


@pytest.mark.django_db
def test_a_rerun_gives_an_older_demo_login_its_limit_and_roles():
    _load()
    admin = User.objects.get(username="admin.za")
    User.objects.filter(pk=admin.pk).update(disbursement_limit=Decimal("0.00"))
    output = _load()
    assert "Demo data loaded." in output
    assert User.objects.get(pk=admin.pk).disbursement_limit == Decimal("50000.00")


@pytest.mark.django_db
def test_the_demo_book_has_run_its_daily_close_so_statuses_are_true():
    _load()
    for entity in Entity.objects.filter(code__in=("demo-za1", "demo-na1")):
        today = local_today(entity)
        long_ago = today.toordinal() - BAD_AFTER_DAYS - 1
        # Clients with an instalment still owed long past its due date:
        in_long_arrears = {
            i.client_id for i in Instalment.objects.filter(entity=entity, open=True, due_ord__lt=long_ago)
            .only("client_id", "paid", "amount") if i.paid < i.amount}
        assert in_long_arrears, "the demo book should have clients in long arrears"
        statuses = dict(Client.objects.filter(pk__in=in_long_arrears).values_list("pk", "status"))
        allowed = dict(Client.objects.filter(pk__in=in_long_arrears).values_list("pk", "new_loans_allowed"))
        assert all(s != ClientStatus.GOOD for s in statuses.values()), statuses
        assert not any(allowed.values())


@pytest.mark.django_db
def test_the_demo_clients_bank_accounts_pass_the_check_digit_test_of_the_demos_table():
    # Every demo bank account failed the table the demo runs with (the numbers were drawn without a
    # check digit), so "Register at the stream" on a demo client was refused every time.
    from imali.clients.models import AccountKind, ClientAccount
    from imali.paystream import cdv
    from imali.paystream.services import cdv_table

    _load()
    table = cdv_table()
    accounts = list(ClientAccount.objects.filter(client__entity__code="demo-za1", kind=AccountKind.BANK))
    assert accounts
    for account in accounts:
        cdv.verify(table, branch_code=account.branch_code, account_number=account.account_number,
                   account_type=account.account_type)
    assert "nothing changed" in _load()
