"""Products, loans, instalments, receipts and their allocations, non-loan debits, daily closes."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from imali.clients.models import PaymentFrequency, PaymentMoveDirection
from imali.core.countries import country_name, payment_streams_offered

from .pricing import CreditType

MONEY = {"max_digits": 14, "decimal_places": 2}


class Product(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="loan_products")
    name = models.CharField(max_length=80)
    credit_type = models.CharField(max_length=12, choices=CreditType.choices)
    frequency = models.CharField(max_length=12, choices=PaymentFrequency.choices, default=PaymentFrequency.MONTHLY)
    min_principal = models.DecimalField(**MONEY)
    max_principal = models.DecimalField(**MONEY)
    min_instalments = models.PositiveSmallIntegerField(default=1)
    max_instalments = models.PositiveSmallIntegerField()
    interest_rate_pm = models.DecimalField("interest rate (% per month)", max_digits=7, decimal_places=4)
    charge_initiation_fee = models.BooleanField(
        default=True, help_text="Charge an initiation fee: the highest the country's caps allow (South Africa), or "
                                "where no cap is recorded, the product's initiation fee")
    # Lender-set, for countries without a recorded cap (loans.pricing.PRICING_CAPS): there the law is
    # not encoded here, so the lender states the fee rather than Imali guessing one (or charging none
    # while the product says it charges one). Blank where a cap decides.
    initiation_fee = models.DecimalField("initiation fee (before VAT)", **MONEY, null=True, blank=True,
                                         help_text="Only where no cap is recorded for the country: the fee each loan "
                                                   "of this product is charged. Blank where the cap decides.")
    service_fee_pm = models.DecimalField("service fee per month", **MONEY, default=0)
    vat_rate = models.DecimalField("VAT on fees (%)", max_digits=5, decimal_places=2)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["entity", "name"], name="loan_product_name_per_entity")]

    def __str__(self) -> str:
        return self.name


class LoanStatus(models.TextChoices):
    APPLICATION = "application", "Application"
    APPROVED = "approved", "Approved"
    ACTIVE = "active", "Active"
    PAID_UP = "paid_up", "Paid up"
    CANCELLED = "cancelled", "Cancelled"
    WRITTEN_OFF = "written_off", "Written off"
    HANDED_OVER = "handed_over", "Handed over"


# Loans whose instalments are still owed to the lender ("on the book").
OPEN_STATUSES = (LoanStatus.ACTIVE, LoanStatus.HANDED_OVER)
DISBURSED_STATUSES = (LoanStatus.ACTIVE, LoanStatus.PAID_UP, LoanStatus.WRITTEN_OFF, LoanStatus.HANDED_OVER)


class Loan(models.Model):
    # No index of its own: the composite indexes below start with entity_id and answer its
    # look-ups; one index fewer for every loan a receipt, close or payout writes.
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="loans", db_index=False)
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="loans")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="loans")
    status = models.CharField(max_length=12, choices=LoanStatus.choices, default=LoanStatus.APPLICATION)
    # Terms, fixed at application (copied from the product so later product edits change nothing).
    principal = models.DecimalField(**MONEY)
    instalments = models.PositiveSmallIntegerField()
    frequency = models.CharField(max_length=12, choices=PaymentFrequency.choices)
    pay_day = models.PositiveSmallIntegerField(null=True, blank=True)
    move_direction = models.CharField(max_length=6, choices=PaymentMoveDirection.choices)
    interest_rate_pm = models.DecimalField(max_digits=7, decimal_places=4)
    initiation_fee = models.DecimalField(**MONEY)
    service_fee_pm = models.DecimalField(**MONEY)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    total_repayable = models.DecimalField(**MONEY, default=0)
    instalment_amount = models.DecimalField(**MONEY, default=0)
    # Life cycle.
    applied_on = models.DateField()
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    disbursed_on = models.DateField(null=True, blank=True, help_text="Agreement date")
    disbursed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payout_account = models.ForeignKey("clients.ClientAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    paid_up_on = models.DateField(null=True, blank=True, help_text="Date totally paid")
    closed_on = models.DateField(null=True, blank=True, help_text="Cancelled, written off or handed over on")
    status_reason = models.CharField(max_length=200, blank=True)
    # In duplum: the unpaid balance on the day the loan went into default caps later charges.
    default_since = models.DateField(null=True, blank=True)
    default_balance = models.DecimalField(**MONEY, null=True, blank=True)
    # Running totals of the loan's posted (not reversed) receipts, kept by receipt_post and
    # receipt_reverse under the loan's row lock, so the whole-book figures need not read receipts.
    # change_total is the change still available: receipts' change less the change paid back to the
    # client (ChangeRefund rows not reversed), kept by change_refund and change_refund_reverse too.
    received_total = models.DecimalField(**MONEY, default=0, help_text="Receipts allocated to the loan")
    change_total = models.DecimalField(**MONEY, default=0, help_text="Overpayments: change available")
    last_receipt_on = models.DateField(null=True, blank=True)
    # The agreement, paid-up and last receipt dates as day numbers (date.toordinal()), kept beside the
    # dates by whatever writes them (save() below, and the services' queryset updates), so the
    # whole-book figures group and subtract integers: SQLite keeps a date as text, and a MAX over
    # text and its parsing per client were a third of the snapshot's loan grouping.
    disbursed_ord = models.IntegerField(null=True, blank=True, editable=False)
    paid_up_ord = models.IntegerField(null=True, blank=True, editable=False)
    last_receipt_ord = models.IntegerField(null=True, blank=True, editable=False)
    # The next monthly post-term charge date (after the last instalment, while still owed).
    next_charge_on = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A loan has an agreement day exactly when it was paid out (every status from active on):
            # the whole-book figures take the latest agreement and the total repayable of paid-out
            # loans from disbursed_ord alone, without comparing the status of every loan.
            models.CheckConstraint(
                condition=(Q(status__in=DISBURSED_STATUSES, disbursed_ord__isnull=False)
                           | (~Q(status__in=DISBURSED_STATUSES) & Q(disbursed_ord__isnull=True))),
                name="loan_agreement_day_when_paid_out"),
        ]
        indexes = [
            models.Index(fields=["entity", "status"], name="loan_entity_status"),
            models.Index(fields=["entity", "client", "disbursed_on"], name="loan_entity_client_disb"),
            # The whole-book figures group every loan by client: with these columns in the key the
            # grouping reads this index alone, already in client order (no table reads, no hashing).
            models.Index(fields=["entity", "client", "status", "disbursed_ord", "product", "paid_up_ord", "total_repayable",
                                 "last_receipt_ord", "change_total", "received_total", "id"], name="loan_client_figures_cover"),
        ]

    def __str__(self) -> str:
        return f"Loan {self.pk} ({self.get_status_display()})"

    def save(self, *args, **kwargs):
        """Keeps each day number equal to its date, whichever fields the caller saves."""
        for date_field, ord_field in DAY_NUMBER_FIELDS.items():
            setattr(self, ord_field, day_number(getattr(self, date_field)))
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = [*update_fields, *(DAY_NUMBER_FIELDS[f] for f in update_fields if f in DAY_NUMBER_FIELDS)]
        super().save(*args, **kwargs)


# A loan's dates and the day numbers kept beside them (Loan.save keeps them equal).
DAY_NUMBER_FIELDS = {"disbursed_on": "disbursed_ord", "paid_up_on": "paid_up_ord", "last_receipt_on": "last_receipt_ord"}


def day_number(day: dt.date | str | None) -> int | None:
    """A date as its day number (date.toordinal()), None for none."""
    if day is None:
        return None
    return (dt.date.fromisoformat(day[:10]) if isinstance(day, str) else day).toordinal()


class InstalmentKind(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled instalment"
    CHARGE = "charge", "Post-term interest and fees"


class Instalment(models.Model):
    """One amount due on one date. entity and client are copied from the loan, and `open` mirrors
    whether the loan is on the book, so the whole-book figures need no joins; `due_ord` and
    `start_ord` are the dates as day numbers so day arithmetic is the same on SQLite and PostgreSQL."""

    # entity and loan have no index of their own: (entity, client), (entity, due date) and the
    # unique (loan, seq) start with them, so each paid instalment updates two indexes fewer.
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+", db_index=False)
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="instalments")
    loan = models.ForeignKey(Loan, on_delete=models.CASCADE, related_name="schedule", db_index=False)
    seq = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=InstalmentKind.choices, default=InstalmentKind.SCHEDULED)
    open = models.BooleanField(default=True)
    start_date = models.DateField()
    due_date = models.DateField()
    start_ord = models.IntegerField()
    due_ord = models.IntegerField()
    fee = models.DecimalField(**MONEY)
    vat = models.DecimalField(**MONEY)
    interest = models.DecimalField(**MONEY)
    capital = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)
    fee_paid = models.DecimalField(**MONEY, default=0)
    vat_paid = models.DecimalField(**MONEY, default=0)
    interest_paid = models.DecimalField(**MONEY, default=0)
    capital_paid = models.DecimalField(**MONEY, default=0)
    paid = models.DecimalField(**MONEY, default=0)
    paid_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["loan", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["loan", "seq"], name="instalment_seq_per_loan"),
            models.CheckConstraint(condition=Q(paid__lte=models.F("amount")) & Q(paid__gte=0), name="instalment_paid_within_amount"),
        ]
        indexes = [
            models.Index(fields=["entity", "client"], name="instalment_entity_client"),
            models.Index(fields=["entity", "due_date"], name="instalment_entity_due"),
            # Only what is still owed on the book: the whole-book figures read these rows, not the
            # (much larger) paid history. The money columns ride in the key so the snapshot reads the
            # index alone (a covering index on both databases; SQLite has no INCLUDE).
            models.Index(fields=["entity", "client", "due_ord", "open", "amount", "paid", "capital", "capital_paid",
                                 "interest", "interest_paid", "start_ord"],
                         condition=Q(open=True, paid__lt=models.F("amount")), name="instalment_unpaid_cover"),
            # Instalments of loans on the book already paid in full: the settlement quote credits what
            # was paid ahead on those not yet due (their interest and fees are not charged), and reads
            # them from here by due date, so the paid history before today is not touched.
            models.Index(fields=["entity", "due_ord", "client", "loan", "start_ord", "capital", "interest", "paid"],
                         condition=Q(open=True, paid__gte=models.F("amount")), name="instalment_paid_ahead_cover"),
        ]

    def __str__(self) -> str:
        return f"{self.loan_id}/{self.seq} {self.due_date} {self.amount}"


class PaybackType(models.TextChoices):
    CASH = "cash", "Cash"
    EFT = "eft", "EFT"
    DEBIT_ORDER = "debit_order", "Debit order"
    DEBICHECK = "debicheck", "DebiCheck"
    NAEDO = "naedo", "NAEDO"
    SOCIAL_GRANT_EFT = "social_grant_eft", "Social-grant EFT"
    MOBILE_MONEY = "mobile_money", "Mobile money"

    def offered_in(self, country: str) -> bool:
        """DebiCheck, NAEDO and Social-grant EFT are South Africa's debit streams (PASA rules, SASSA
        grants): a lender elsewhere collects by debit order, EFT, cash or mobile money."""
        return self not in SA_ONLY_PAYBACK_TYPES or payment_streams_offered(country)


SA_ONLY_PAYBACK_TYPES = frozenset({PaybackType.DEBICHECK, PaybackType.NAEDO, PaybackType.SOCIAL_GRANT_EFT})


def payback_types_for(country: str) -> list[tuple[str, str]]:
    """(value, label) of the payback types a lender in `country` may record, in the usual order."""
    return [(value, label) for value, label in PaybackType.choices if PaybackType(value).offered_in(country)]


def payback_type_refusal(payback_type: str, *, country: str) -> str:
    """Why `payback_type` is not for a lender in `country`, or "" when it is."""
    if payback_type in PaybackType.values and not PaybackType(payback_type).offered_in(country):
        return (f"{PaybackType(payback_type).label} is South Africa's; a lender in {country_name(country)} records "
                f"{', '.join(label for _, label in payback_types_for(country))}.")
    return ""


class Receipt(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="receipts")
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="receipts")
    amount = models.DecimalField(**MONEY)
    allocated = models.DecimalField(**MONEY, default=0)
    change = models.DecimalField(**MONEY, default=0, help_text="Overpayment: change available to the client")
    value_date = models.DateField()
    payback_type = models.CharField(max_length=16, choices=PaybackType.choices)
    external_reference = models.CharField(max_length=64, blank=True, help_text="Bank, collector or provider reference")
    # State the receipt changed, kept so a reversal restores it exactly.
    loan_status_before = models.CharField(max_length=12, choices=LoanStatus.choices)
    loan_paid_up_on_before = models.DateField(null=True, blank=True)
    is_reversed = models.BooleanField(default=False)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reversal_reason = models.CharField(max_length=200, blank=True)
    captured_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-value_date", "-id"]
        constraints = [
            # The database refuses a second posting of the same reference, also under concurrency.
            models.UniqueConstraint(
                fields=["entity", "external_reference"], condition=~Q(external_reference=""),
                name="receipt_external_reference_once",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="receipt_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["entity", "client", "value_date"], name="receipt_entity_client_date"),
        ]

    def __str__(self) -> str:
        return f"Receipt {self.pk} {self.amount} on {self.value_date}"


class ReceiptAllocation(models.Model):
    receipt = models.ForeignKey(Receipt, on_delete=models.CASCADE, related_name="allocations")
    instalment = models.ForeignKey(Instalment, on_delete=models.PROTECT, related_name="allocations")
    fee = models.DecimalField(**MONEY, default=0)
    vat = models.DecimalField(**MONEY, default=0)
    interest = models.DecimalField(**MONEY, default=0)
    capital = models.DecimalField(**MONEY, default=0)
    # The instalment's paid date before this receipt, restored on reversal.
    paid_on_before = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.receipt_id} → {self.instalment_id}: {self.total}"

    @property
    def total(self):
        return self.fee + self.vat + self.interest + self.capital


class NonLoanDebit(models.Model):
    """A debt that is not a loan instalment (e.g. a bank charge passed on, an insurance premium)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="non_loan_debits")
    description = models.CharField(max_length=120)
    amount = models.DecimalField(**MONEY)
    debit_date = models.DateField()
    settled_on = models.DateField(null=True, blank=True)
    settled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-debit_date", "-id"]
        indexes = [models.Index(fields=["entity", "client"], name="nonloandebit_entity_client")]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="nonloandebit_amount_positive")]

    def __str__(self) -> str:
        return f"{self.description} {self.amount}"


class RefundMethod(models.TextChoices):
    CASH = "cash", "Cash"
    EFT = "eft", "EFT"
    MOBILE_MONEY = "mobile_money", "Mobile money"


class ChangeRefund(models.Model):
    """Change available on a loan (overpayments) paid back to the client. Posting one takes its
    amount off the loan's change_total in the same transaction; reversing it puts it back."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="change_refunds")
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="change_refunds")
    amount = models.DecimalField(**MONEY)
    paid_on = models.DateField()
    method = models.CharField(max_length=16, choices=RefundMethod.choices)
    reference = models.CharField(max_length=64, blank=True, help_text="Payment or slip reference")
    reason = models.CharField(max_length=200)
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    is_reversed = models.BooleanField(default=False)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reversal_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_on", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="changerefund_amount_positive")]

    def __str__(self) -> str:
        return f"Change refund {self.pk} {self.amount} on {self.paid_on}"


class DailyClose(models.Model):
    """One row per entity and local business day: its presence makes a second run a no-op."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    business_date = models.DateField()
    loans_defaulted = models.PositiveIntegerField(default=0)
    loans_cured = models.PositiveIntegerField(default=0)
    charges_posted = models.PositiveIntegerField(default=0)
    clients_updated = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-business_date"]
        constraints = [models.UniqueConstraint(fields=["entity", "business_date"], name="daily_close_once_per_day")]

    def __str__(self) -> str:
        return f"Close {self.entity_id} {self.business_date}"
