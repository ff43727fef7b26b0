"""The demo book's lenders start with the OTP switches on."""

from __future__ import annotations

import pytest

from imali.demo.generator import BOOK_EXTENSIONS, generate_book
from imali.signing.demo_data import DEMO_THRESHOLD, add_otp_setups
from imali.signing.models import OtpSetup
from tests import factories

pytestmark = pytest.mark.django_db


def test_generated_lenders_have_loan_otp_on():
    assert add_otp_setups in BOOK_EXTENSIONS
    summary = generate_book(clients=20, seed=7, actor=factories.make_operator(), countries=("ZA",),
                            code_prefix="sigdemo", extensions=[add_otp_setups])
    setup = OtpSetup.objects.get(entity_id=summary.entities[0].entity_id)
    assert setup.enrol_client and setup.loan_otp and not setup.esign_loan_otp and setup.threshold == DEMO_THRESHOLD
