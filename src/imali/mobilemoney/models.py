"""Mobile-money providers per entity, the transactions they report, and mobile disbursements.

A provider transaction is stored once per (setup, provider transaction id): the unique constraint
is what makes a repeated callback, or a callback and the statement line of the same payment, post
one receipt (DOMAIN §8 "the same transaction is never recorded twice")."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

MONEY = {"max_digits": 14, "decimal_places": 2}


class Provider(models.TextChoices):
    MPESA = "mpesa", "M-PESA (Daraja)"
    MOMO = "momo", "MTN MoMo"


class ProviderSetup(models.Model):
    """One provider account of an entity. The secrets are stored to call the provider and are never
    shown back on a screen or in the API (forms take a new value or keep the old one)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="mobile_money_setups")
    provider = models.CharField(max_length=8, choices=Provider.choices)
    is_active = models.BooleanField(default=True)
    base_url = models.URLField("provider address", max_length=200)
    short_code = models.CharField("short code / paybill", max_length=20, blank=True)
    target_environment = models.CharField(max_length=40, blank=True, help_text="MoMo X-Target-Environment, e.g. mtnzambia")
    currency = models.CharField(max_length=3, blank=True, help_text="Currency the provider account is held in")
    consumer_key = models.CharField("consumer key / API user", max_length=120)
    consumer_secret = models.CharField("consumer secret / API key", max_length=200)
    subscription_key = models.CharField("subscription key (MoMo)", max_length=200, blank=True)
    initiator_name = models.CharField("B2C initiator name (M-PESA)", max_length=60, blank=True)
    security_credential = models.CharField("B2C security credential (M-PESA)", max_length=600, blank=True)
    # The callback token is derived from SECRET_KEY and this salt (services.callback_token): rotating
    # the salt voids every URL registered before, and no token is stored.
    callback_salt = models.CharField(max_length=32, default="", blank=True)
    # Where the provider calls back: this web app's public address.
    callback_base_url = models.URLField("callback address of this system", max_length=200)
    # The statement export's column headers by our field name (statement.DEFAULT_COLUMNS when empty).
    statement_columns = models.JSONField(default=dict, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    SECRET_FIELDS = ("consumer_secret", "subscription_key", "security_credential")

    class Meta:
        ordering = ["provider", "id"]
        constraints = [models.UniqueConstraint(fields=["entity", "provider"], name="mm_setup_one_per_provider")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.short_code or self.target_environment}".strip()


class Direction(models.TextChoices):
    IN = "in", "Payment in"
    OUT = "out", "Payment out"


class Source(models.TextChoices):
    CALLBACK = "callback", "Real-time notification"
    STATEMENT = "statement", "Statement import"
    STATUS = "status", "Status query"


class TransactionStatus(models.TextChoices):
    # A confirmation callback stored and answered, its receipt posted within moments by the
    # consumer (services.payments_received_post, set-based): see docs/mobilemoney.md.
    RECEIVED = "received", "Received, being posted"
    POSTED = "posted", "Receipt posted"
    SUSPENSE = "suspense", "In suspense (not matched)"
    ALLOCATED = "allocated", "Allocated from suspense"


class ConfirmationSms(models.TextChoices):
    """The client's "payment received" SMS of a posted payment. It is marked PENDING in the
    transaction that posts the receipt and queued after that commits (services.payment_confirmation_send),
    so a burst of callbacks never queues on the entity's SMS credit ledger lock; a mark left PENDING
    (the task lost, the consumer down) is picked up by the periodic sweep."""

    NONE = "", "Not needed"
    PENDING = "pending", "To be queued"
    QUEUED = "queued", "Queued"
    NOT_SENT = "not_sent", "Not sent (messaging refused it)"


class ProviderTransaction(models.Model):
    """A payment into the entity's mobile-money account, as the provider reported it."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    setup = models.ForeignKey(ProviderSetup, on_delete=models.PROTECT, related_name="transactions")
    provider_transaction_id = models.CharField("provider transaction number", max_length=64)
    source = models.CharField(max_length=10, choices=Source.choices)
    status = models.CharField(max_length=10, choices=TransactionStatus.choices)
    amount = models.DecimalField(**MONEY)
    msisdn = models.CharField("payer phone", max_length=20, blank=True)
    payer_name = models.CharField(max_length=120, blank=True)
    account_reference = models.CharField(max_length=40, blank=True)
    transacted_at = models.DateTimeField()
    receipt = models.ForeignKey("loans.Receipt", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    suspense_reason = models.CharField(max_length=200, blank=True)
    allocated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    allocated_at = models.DateTimeField(null=True, blank=True)
    confirmation_sms = models.CharField(max_length=8, choices=ConfirmationSms.choices, default="", blank=True)
    statement = models.ForeignKey("StatementImport", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-transacted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["setup", "provider_transaction_id"], name="mm_transaction_once"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mm_transaction_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["entity", "status", "transacted_at"], name="mm_txn_entity_status"),
            # The sweep's read: only the few rows still waiting for their SMS are in it.
            models.Index(fields=["created_at"], name="mm_txn_sms_pending", condition=Q(confirmation_sms="pending")),
            # The poster's read: only the confirmations stored and not yet posted are in it.
            models.Index(fields=["id"], name="mm_txn_received", condition=Q(status="received")),
        ]

    def __str__(self) -> str:
        return f"{self.provider_transaction_id} {self.amount}"


class CollectionRequest(models.Model):
    """A MoMo request-to-pay sent to a client's wallet. Its X-Reference-Id is made here and stored
    before the request is sent, so a retry reuses it and the provider sees one request."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    setup = models.ForeignKey(ProviderSetup, on_delete=models.PROTECT, related_name="collection_requests")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="+")
    reference_id = models.UUIDField(default=uuid.uuid4, unique=True)
    amount = models.DecimalField(**MONEY)
    msisdn = models.CharField(max_length=20)
    status = models.CharField(max_length=10, default="PENDING")
    reason = models.CharField(max_length=60, blank=True)
    transaction = models.ForeignKey(ProviderTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="mm_collection_amount_positive")]

    def __str__(self) -> str:
        return f"Request to pay {self.reference_id} {self.amount}"


class DisbursementStatus(models.TextChoices):
    PAYMENT_PENDING = "pending", "Payment pending"
    AWAITING_APPROVAL = "approval", "Awaiting approval"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent, awaiting the provider"
    UNKNOWN = "unknown", "Timed out: status being checked"
    SUCCESSFUL = "successful", "Payment made"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


OPEN_DISBURSEMENT_STATUSES = (
    DisbursementStatus.PAYMENT_PENDING, DisbursementStatus.AWAITING_APPROVAL, DisbursementStatus.SENDING,
    DisbursementStatus.SENT, DisbursementStatus.UNKNOWN,
)
# Statuses in which money may have left, or may yet leave, the entity's account.
IN_FLIGHT_STATUSES = (DisbursementStatus.SENDING, DisbursementStatus.SENT, DisbursementStatus.UNKNOWN)


class DisbursementBatch(models.Model):
    """The consolidated "send mobile payments" table: its total is what the disbursement limit is
    checked against."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    setup = models.ForeignKey(ProviderSetup, on_delete=models.PROTECT, related_name="batches")
    total = models.DecimalField(**MONEY)
    count = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Mobile payments {self.pk}: {self.count} for {self.total}"


class Disbursement(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="+")
    batch = models.ForeignKey(DisbursementBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="disbursements")
    payout_account = models.ForeignKey("clients.ClientAccount", on_delete=models.PROTECT, related_name="+")
    msisdn = models.CharField(max_length=20)
    amount = models.DecimalField(**MONEY)
    status = models.CharField(max_length=10, choices=DisbursementStatus.choices, default=DisbursementStatus.PAYMENT_PENDING)
    # Ours, made once and never changed: M-PESA's OriginatorConversationID / MoMo's X-Reference-Id.
    # Every send and resend carries it, so the provider pays it at most once.
    originator_id = models.UUIDField(default=uuid.uuid4, unique=True)
    conversation_id = models.CharField(max_length=64, blank=True)
    confirmation_number = models.CharField(max_length=64, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A loan has at most one mobile disbursement that is not finished or failed.
            models.UniqueConstraint(fields=["loan"], condition=Q(status__in=[s.value for s in OPEN_DISBURSEMENT_STATUSES])
                                    | Q(status="successful"), name="mm_disbursement_one_open_per_loan"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mm_disbursement_amount_positive"),
        ]
        indexes = [models.Index(fields=["entity", "status"], name="mm_disb_entity_status")]

    def __str__(self) -> str:
        return f"Disbursement {self.pk} loan {self.loan_id} {self.amount}"


class ImportState(models.TextChoices):
    PREVIEW = "preview", "Previewed, not confirmed"
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Importing"
    DONE = "done", "Imported"
    FAILED = "failed", "Failed"


class StatementImport(models.Model):
    """One uploaded statement: previewed first (the file kept in the row, so the confirm works on
    whichever web process it lands), then imported once; it is also the import's log with counts."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    setup = models.ForeignKey(ProviderSetup, on_delete=models.PROTECT, related_name="imports")
    file_name = models.CharField(max_length=200)
    file_sha256 = models.CharField(max_length=64)
    content = models.BinaryField(blank=True, default=b"")
    columns = models.JSONField(default=dict, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The confirm runs on the Huey consumer: its state and how many lines it has gone through.
    state = models.CharField(max_length=8, choices=ImportState.choices, default=ImportState.PREVIEW)
    progress = models.PositiveIntegerField(default=0)
    confirmed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=300, blank=True)
    skipped = models.PositiveIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    posted = models.PositiveIntegerField(default=0)
    suspense = models.PositiveIntegerField(default=0)
    already_recorded = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"Statement {self.file_name} ({self.lines} lines)"
