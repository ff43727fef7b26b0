"""A process sending mobile payments is killed with SIGKILL after M-PESA has paid and before it
recorded the answer: the recovery pass asks M-PESA about the originator id and records the payment
once; nothing is paid twice. A real process (`payments_send` in a child Python) on the PostgreSQL
test database; the local Daraja peer delivers the SIGKILL the moment it has made the payment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from imali.loans.models import Loan, LoanStatus
from imali.mobilemoney import disbursements
from imali.mobilemoney.models import DisbursementStatus

from .conftest import mpesa_setup
from .test_disbursements import approved_loan, recover_until_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]
ROOT = Path(__file__).resolve().parents[2]

SEND = """
import django, os
django.setup()
from imali.mobilemoney.disbursements import payments_send
from imali.tenancy.models import Entity, User
payments_send(entity=Entity.objects.get(pk={entity}), actor=User.objects.get(pk={user}))
print("RECORDED")
"""


def test_sigkill_between_send_and_record_never_pays_twice(entity, lender_user, mpesa_peer, live_server, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the child process needs the test database too: an in-memory SQLite test database is not shared")
    setup = mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    mpesa_peer.faults.lose_callbacks = True  # the killed process would not have heard the result either
    child: dict[str, subprocess.Popen] = {}
    mpesa_peer.on_payment = lambda payment: os.kill(child["proc"].pid, signal.SIGKILL)
    db = settings.DATABASES["default"]
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "IMALI_SECRET_KEY": settings.SECRET_KEY, "IMALI_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT / "src"),
           "DJANGO_SETTINGS_MODULE": "imali.config.settings"}
    child["proc"] = subprocess.Popen([sys.executable, "-c", SEND.format(entity=entity.pk, user=lender_user.pk)],
                                     env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = child["proc"].communicate(timeout=300)
    assert child["proc"].returncode == -signal.SIGKILL, (out, err)
    assert "RECORDED" not in out
    d.refresh_from_db()
    assert d.status == DisbursementStatus.SENDING and d.attempts == 1
    assert len(mpesa_peer.payments) == 1
    recover_until_final(d, lambda: len(mpesa_peer.callbacks_sent))
    d.refresh_from_db()
    payment = mpesa_peer.payments[str(d.originator_id)]
    assert payment.requests == 1 and len(mpesa_peer.payments) == 1
    assert d.confirmation_number == payment.receipt
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE
    assert setup.pk == d.batch.setup_id
