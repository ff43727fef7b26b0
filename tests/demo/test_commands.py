"""load_demo (idempotent, working logins, never in production) and the generate_book command."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import password_validation
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from imali.clients.models import Client
from imali.demo.demo_data import DEMO_LOGINS, DEMO_URL
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right


def _run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_load_demo_creates_the_book_and_logins_that_work(client):
    output = _run("load_demo")
    assert "Demo data loaded." in output
    assert DEMO_URL in output
    for login in DEMO_LOGINS:
        assert f"{login.username}" in output and login.password in output
        password_validation.validate_password(login.password, User.objects.get(username=login.username))
        assert client.login(username=login.username, password=login.password), login.username
        client.logout()

    za, na = Entity.objects.get(code="demo-za1"), Entity.objects.get(code="demo-na1")
    assert (za.country, na.country) == ("ZA", "NA")
    assert Client.objects.filter(entity=za).count() == 200
    assert Client.objects.filter(entity=na).count() == 200
    assert User.objects.get(username="operator").is_operator
    admin_za = User.objects.get(username="admin.za")
    officer_za = User.objects.get(username="officer.za")
    assert admin_za.entity == za and admin_za.has_right(Right.MANAGE_USERS)
    assert officer_za.entity == za and officer_za.has_right(Right.CAPTURE_LOANS)
    assert not officer_za.has_right(Right.MANAGE_USERS)
    assert User.objects.get(username="admin.na").entity == na
    # Issue 11: the administrators are told of new SMS replies in the app.
    from imali.messaging.models import ReplyNotifyRecipient

    assert ReplyNotifyRecipient.objects.filter(entity=za, in_app=True).exists()
    # Issue 11: every automatic batch and MIS stream is on for the demo lenders, so the consumer of
    # `make demo` sends them; each MIS stream goes to demo logins with a cellphone.
    from imali.reminders.models import AutomaticSetup, MisRecipient, MisSetup, MisStream

    for entity in (za, na):
        automatic, mis = AutomaticSetup.objects.get(entity=entity), MisSetup.objects.get(entity=entity)
        assert automatic.due_enabled and automatic.arrears_enabled and automatic.received_enabled
        assert automatic.birthday_enabled
        for stream in MisStream.values:
            assert mis.enabled(stream), stream
            recipients = MisRecipient.objects.filter(entity=entity, stream=stream).select_related("user")
            assert recipients and all(r.user.cellphone for r in recipients), stream
    # Mobile disbursements can be tried at once: every approved loan of the M-PESA demo lender has
    # a payout wallet, so "Make mobile disbursement" is offered on each.
    from imali.loans.models import Loan, LoanStatus
    from imali.mobilemoney.selectors import loans_to_pay_out

    approved = Loan.objects.filter(entity=za, status=LoanStatus.APPROVED).count()
    to_pay = list(loans_to_pay_out(entity=za))
    assert approved and len(to_pay) == approved and all(loan.payout_wallet for loan in to_pay)


@pytest.mark.django_db
def test_load_demo_run_again_changes_nothing_and_prints_the_logins(client):
    _run("load_demo")
    counts = (Entity.objects.count(), User.objects.count(), Client.objects.count())
    output = _run("load_demo")
    assert "exists already" in output
    assert all(login.password in output for login in DEMO_LOGINS)
    assert (Entity.objects.count(), User.objects.count(), Client.objects.count()) == counts
    assert client.login(username="admin.za", password=DEMO_LOGINS[1].password)


@pytest.mark.django_db
@override_settings(IMALI_ENV="production", PRODUCTION=True)
def test_load_demo_refuses_to_run_in_production():
    with pytest.raises(CommandError, match="production"):
        _run("load_demo")
    assert not User.objects.filter(username="operator").exists()
    assert not Entity.objects.exists()


@pytest.mark.django_db
def test_generate_book_command_prints_progress_and_elapsed_time():
    output = _run("generate_book", "--clients", "21", "--seed", "4", "--countries", "ZA,SZ", "--entities-per-country", "1")
    assert "Generated 21 clients" in output and "elapsed" in output
    assert "s4-za1" in output and "s4-sz1" in output
    assert Client.objects.count() == 21
    assert User.objects.get(username="generator.operator").is_operator
    # An existing operator is reused rather than a second system account made.
    _run("generate_book", "--clients", "2", "--seed", "4", "--countries", "NA")
    assert User.objects.filter(is_operator=True).count() == 1


@pytest.mark.django_db
def test_generate_book_command_refuses_bad_countries_and_production():
    with pytest.raises(CommandError, match="Countries"):
        _run("generate_book", "--clients", "2", "--countries", "KE")
    with override_settings(PRODUCTION=True), pytest.raises(CommandError, match="production"):
        _run("generate_book", "--clients", "2")
