"""A process paying a loan out through PayToClientAccount is killed with SIGKILL after the stream
has taken the payment and before it recorded the reply: paying the loan out again finds the
waiting payment and resends it under the same idempotency reference, the stream answers from its
record, and the client is paid once. A real process (`credit_pay` in a child Python) on the
PostgreSQL test database; the local peer delivers the SIGKILL the moment it has made the payment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from imali.loans.models import LoanStatus
from imali.paystream import services
from imali.paystream.models import CreditPayment, CreditPaymentStatus, RequestStatus, StreamRequest

from .conftest import ABSA_OK, approved_loan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]
ROOT = Path(__file__).resolve().parents[2]

PAY = """
import django
django.setup()
from imali.loans.models import Loan
from imali.paystream import services
from imali.paystream.models import StreamAccount
from imali.tenancy.models import User
loan = Loan.objects.select_related("entity", "client").get(pk={loan})
services.credit_pay(entity=loan.entity, actor=User.objects.get(pk={user}), client=loan.client, loan=loan,
                    parts=[(StreamAccount.objects.get(pk={account}), "2000.00")], cash_amount="1000.00")
print("RECORDED")
"""


def test_sigkill_between_sending_and_recording_pays_once(ps_entity, clerk, borrower, peer, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the child process needs the test database too: an in-memory SQLite test database is not shared")
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    child: dict[str, subprocess.Popen] = {}
    peer.on_payment = lambda payment: os.kill(child["proc"].pid, signal.SIGKILL)
    db = settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "IMALI_SECRET_KEY": settings.SECRET_KEY, "IMALI_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src"),
           "DJANGO_SETTINGS_MODULE": "imali.config.settings"}
    child["proc"] = subprocess.Popen([sys.executable, "-c", PAY.format(loan=loan.pk, user=clerk.pk, account=account.pk)],
                                     env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child["proc"].communicate(timeout=180)
    assert child["proc"].returncode == -signal.SIGKILL, (out, err)
    assert "RECORDED" not in out
    # What the dead process left: the payment and its request written before sending, no answer.
    payment = CreditPayment.objects.get(loan=loan)
    request = StreamRequest.objects.get(idempotency_reference=payment.idempotency_reference)
    assert (payment.status, payment.reference, request.status) == (CreditPaymentStatus.SENDING, "", RequestStatus.SENDING)
    assert len(peer.state.payments) == 1 and loan.__class__.objects.get(pk=loan.pk).status == LoanStatus.APPROVED
    peer.on_payment = None
    again = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "2000.00")],
                                cash_amount="1000.00")
    assert again.pk == payment.pk and again.status == CreditPaymentStatus.ACCEPTED
    assert again.reference == next(iter(peer.state.payments))
    assert len(peer.state.payments) == 1 and peer.state.calls["PayToClientAccount"] == 1
    assert CreditPayment.objects.filter(loan=loan).count() == 1
    assert loan.__class__.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE
