"""Demo book: every generated lender starts with Enrol Client and Loan OTP on (loans of 1,000 and
more need the client's code), so a demo user can enrol a client's cellphone and sign a loan with
the code the local SMSC's phone page shows. A BOOK_EXTENSIONS hook of imali.demo.generator."""

from __future__ import annotations

import random
from decimal import Decimal

DEMO_THRESHOLD = Decimal("1000.00")


def add_otp_setups(connection, summary, rng: random.Random) -> None:
    from .models import OtpSetup

    OtpSetup.objects.bulk_create(
        [OtpSetup(entity_id=book.entity_id, enrol_client=True, loan_otp=True, threshold=DEMO_THRESHOLD)
         for book in summary.entities],
        ignore_conflicts=True,
    )
