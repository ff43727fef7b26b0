"""The lender's side of the payment stream: per-entity settings, what was registered at the
stream (employers, clients, accounts) with the stream's references, promissory notes and their
instalments, credit payments, wallet requests, card-issue receipts, and the log of every request
sent, each with its idempotency reference."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

MONEY = {"max_digits": 14, "decimal_places": 2}


class StreamSettings(models.Model):
    """Where an entity's payment stream is and how Imali logs on to it. The password is a secret:
    it is written, never shown back (forms, API, audit entries and logs leave it out)."""

    entity = models.OneToOneField("tenancy.Entity", on_delete=models.CASCADE, related_name="stream_settings")
    base_url = models.URLField("base URL", help_text="The payment stream's web-service address")
    username = models.CharField(max_length=80)
    password = models.CharField(max_length=200)
    branch_code = models.CharField(max_length=20, blank=True, help_text="The lender's branch at the stream")
    timeout_seconds = models.PositiveSmallIntegerField(default=10)
    decline_sms = models.BooleanField(
        "SMS the client on a declined or returned debit", default=False,
        help_text="Text of the message type 'Debit order declined or returned unpaid' (Setup → SMS templates)")
    # Where Imali is in the stream's collection-results feed: the last position imported.
    collections_after = models.PositiveBigIntegerField(default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.entity} → {self.base_url}"


class StreamEmployer(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    employer = models.OneToOneField("clients.Employer", on_delete=models.PROTECT, related_name="stream_registration")
    reference = models.CharField(max_length=40, help_text="The stream's employer reference")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.employer} ({self.reference})"



class StreamClient(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.OneToOneField("clients.Client", on_delete=models.PROTECT, related_name="stream_registration")
    reference = models.CharField(max_length=40, help_text="The stream's client reference")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.client} ({self.reference})"



class StreamAccount(models.Model):
    """A client account the stream knows (AddClientAccount after a CDV check, or a wallet the
    stream created): only these can receive credit payments."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="stream_accounts")
    account = models.OneToOneField("clients.ClientAccount", on_delete=models.PROTECT, related_name="stream_registration")
    reference = models.CharField(max_length=40, help_text="The stream's account reference")
    cdv_bank = models.CharField(max_length=60, blank=True, help_text="Bank named by the check-digit table")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.account} ({self.reference})"



class PaymentStreamKind(models.TextChoices):
    NAEDO = "naedo", "NAEDO"
    EFT = "eft", "EFT"
    SOCIAL_GRANT_EFT = "social_grant_eft", "Social Grant EFT"


# Amounts of a note's instalments may change only in these streams (seed 2.5).
AMOUNT_EDITABLE_STREAMS = (PaymentStreamKind.EFT, PaymentStreamKind.SOCIAL_GRANT_EFT)


class NoteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"
    NOT_LOADED = "not_loaded", "Not loaded"
    COMPLETED = "completed", "Completed"


PRINTABLE_NOTE_STATUSES = (NoteStatus.ACTIVE, NoteStatus.PENDING, NoteStatus.CANCELLED)


class PromissoryNote(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="promissory_notes")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="promissory_notes")
    stream = models.CharField(max_length=16, choices=PaymentStreamKind.choices)
    account = models.ForeignKey(StreamAccount, on_delete=models.PROTECT, related_name="notes",
                                help_text="The account instalments are collected from")
    status = models.CharField(max_length=12, choices=NoteStatus.choices, default=NoteStatus.PENDING)
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's note reference")
    tracking_days = models.PositiveSmallIntegerField(default=0)
    total = models.DecimalField(**MONEY)
    mandate = models.ForeignKey("DebiCheckMandate", null=True, blank=True, on_delete=models.PROTECT, related_name="notes",
                                help_text="The approved DebiCheck mandate the instalments are collected under")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One live note per loan: a second would collect every instalment twice.
            models.UniqueConstraint(fields=["loan"], condition=~models.Q(status="cancelled"), name="one_live_note_per_loan"),
        ]
        # The stream's results name the note by its reference: a day's import matches thousands.
        indexes = [models.Index(fields=["entity", "reference"], name="note_entity_reference")]

    def __str__(self) -> str:
        return f"{self.get_stream_display()} note {self.reference or self.pk}"


class NoteInstalmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    COLLECTED = "collected", "Collected"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    DISABLED = "disabled", "Disabled"


class NoteInstalment(models.Model):
    # No index of its own: the unique (note, seq) starts with it.
    note = models.ForeignKey(PromissoryNote, on_delete=models.CASCADE, related_name="instalments", db_index=False)
    seq = models.PositiveSmallIntegerField()
    action_date = models.DateField()
    amount = models.DecimalField(**MONEY)
    tracking_days = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=NoteInstalmentStatus.choices, default=NoteInstalmentStatus.PENDING)

    class Meta:
        ordering = ["note", "seq"]
        constraints = [models.UniqueConstraint(fields=["note", "seq"], name="note_instalment_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action_date} {self.amount}"



class CreditPaymentStatus(models.TextChoices):
    SENDING = "sending", "Sending to the stream"
    ACCEPTED = "accepted", "Accepted by the stream (validated)"
    REJECTED = "rejected", "Rejected by the stream"
    RETURNED = "returned", "Returned by the receiving bank"


class CreditPayment(models.Model):
    """PayToClientAccount: up to two registered accounts plus a cash part. Accepted means only that
    the stream validated the request; it does not prove the receiving bank paid."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="credit_payments")
    loan = models.ForeignKey("loans.Loan", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_payments")
    account_1 = models.ForeignKey(StreamAccount, on_delete=models.PROTECT, related_name="+")
    amount_1 = models.DecimalField(**MONEY)
    account_2 = models.ForeignKey(StreamAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount_2 = models.DecimalField(**MONEY, default=0)
    cash_amount = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY)
    status = models.CharField(max_length=10, choices=CreditPaymentStatus.choices, default=CreditPaymentStatus.SENDING)
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's payment reference")
    idempotency_reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    rejection = models.CharField(max_length=200, blank=True)
    problem = models.CharField(max_length=200, blank=True,
                               help_text="What a person must resolve: paid but the loan could not be marked paid out, or returned")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A loan is paid out through the stream at most once: only a payment the stream rejected
            # (no money moved) leaves room for another.
            models.UniqueConstraint(fields=["loan"], condition=~models.Q(status="rejected"),
                                    name="paystream_one_live_payment_per_loan"),
        ]

    def __str__(self) -> str:
        return f"Credit payment {self.reference or self.pk}"



class WalletStatus(models.TextChoices):
    REQUESTED = "requested", "Requested (being created by the stream)"
    CREATED = "created", "Created"
    FAILED = "failed", "Failed"


class WalletRequest(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="wallet_requests")
    cellphone = models.CharField(max_length=16)
    status = models.CharField(max_length=10, choices=WalletStatus.choices, default=WalletStatus.REQUESTED)
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's wallet request reference")
    wallet_number = models.CharField(max_length=20, blank=True)
    account = models.OneToOneField(StreamAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    failure = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["client"], condition=models.Q(status="requested"), name="one_open_wallet_request"),
        ]

    def __str__(self) -> str:
        return f"Wallet request {self.reference or self.pk}"



class StreamFunction(models.TextChoices):
    ADD_EMPLOYER = "AddEmployer", "Add employer"
    ADD_CLIENT = "AddClient", "Add client"
    CREATE_PROMISSORY = "CreatePromissory", "Create promissory note"
    CANCEL_PROMISSORY = "CancelPromissory", "Cancel promissory note"
    PRINT_PROMISSORY = "PrintPromissory", "Print promissory note"
    EDIT_INSTALMENT = "EditInstalment", "Edit instalment"
    ADD_CLIENT_ACCOUNT = "AddClientAccount", "Add client account"
    PAY_TO_CLIENT_ACCOUNT = "PayToClientAccount", "Pay to client account"
    PRINT_CLIENT_CREDIT = "PrintClientCredit", "Print client credit"
    CREATE_WALLET = "CreateWallet", "Create wallet"
    WALLET_STATUS = "WalletStatus", "Wallet status"
    PRINT_CARD_ISSUE_RECEIPT = "PrintCardIssueReceipt", "Print card-issue receipt"
    COLLECTION_RESULTS = "CollectionResults", "Collection results"
    CREATE_MANDATE = "CreateMandate", "Create DebiCheck mandate"
    AMEND_MANDATE = "AmendMandate", "Amend DebiCheck mandate"
    MANDATE_STATUS = "MandateStatus", "DebiCheck mandate status"
    CANCEL_MANDATE = "CancelMandate", "Cancel DebiCheck mandate"


class RequestStatus(models.TextChoices):
    SENDING = "sending", "Sending (no answer recorded yet)"
    SUCCEEDED = "succeeded", "Succeeded"
    REJECTED = "rejected", "Rejected by the stream"
    UNAVAILABLE = "unavailable", "Stream unavailable"


class StreamRequest(models.Model):
    """Every call to the stream. Written (and committed) before the call, so a process that dies
    between sending and recording the reply leaves a SENDING row the retry finds and resends with
    the same idempotency reference: the stream answers it from its record instead of acting twice."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    function = models.CharField(max_length=24, choices=StreamFunction.choices)
    idempotency_reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=12, choices=RequestStatus.choices, default=RequestStatus.SENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's reference in the reply")
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["entity", "object_type", "object_id"], name="streamrequest_object")]

    def __str__(self) -> str:
        return f"{self.function} {self.idempotency_reference}"


class CardIssueReceipt(models.Model):
    """A printed acknowledgement of a card and PIN mailer handed to the client (the stream allows
    it only for a card assigned to the client). Only the card's last four digits are kept."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="card_issue_receipts")
    card_last_four = models.CharField(max_length=4)
    reference = models.CharField(max_length=40, blank=True)
    printed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    printed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Card …{self.card_last_four}"


class CollectionKind(models.TextChoices):
    COLLECTED = "collected", "Collected"
    FAILED = "failed", "Declined"
    UNPAID = "unpaid", "Returned unpaid"


class CollectionProblem(models.Model):
    """A line of the stream's results feed that could not be read: kept with the reason (and the
    line as received) for a person to follow up with the stream; the feed moves on past it."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(null=True, blank=True, help_text="The line's place in the feed, if readable")
    reference = models.CharField(max_length=40, blank=True)
    reason = models.CharField(max_length=200)
    raw = models.TextField(blank=True, help_text="The line as the stream sent it (shortened)")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["entity", "position"], name="collection_problem_once")]

    def __str__(self) -> str:
        return f"Unreadable result {self.position or self.reference}"


class CollectionResult(models.Model):
    """One result from the stream, imported exactly once per (entity, stream reference): a
    collection posts a receipt, a decline keeps the bank's reason, date and amount, an unpaid
    reverses the receipt of the collection it returns."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    note = models.ForeignKey(PromissoryNote, on_delete=models.PROTECT, related_name="results")
    instalment = models.ForeignKey(NoteInstalment, on_delete=models.PROTECT, related_name="results")
    reference = models.CharField(max_length=40, help_text="The stream's result reference")
    kind = models.CharField(max_length=10, choices=CollectionKind.choices)
    amount = models.DecimalField(**MONEY)
    result_date = models.DateField()
    reason = models.CharField(max_length=120, blank=True)
    original_reference = models.CharField(max_length=40, blank=True)
    receipt = models.ForeignKey("loans.Receipt", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    problem = models.CharField(max_length=200, blank=True, help_text="Why the result could not be applied to the loan book")
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-result_date", "-id"]
        constraints = [models.UniqueConstraint(fields=["entity", "reference"], name="collection_result_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.reference}"


# -- DebiCheck mandates (DOMAIN §7 and §11) ---------------------------------------------------
class AuthenticationType(models.TextChoices):
    TT1_REALTIME = "tt1", "TT1 real time (client approves on the phone within 120 seconds)"
    TT1_DELAYED = "tt1_delayed", "TT1 delayed (client approves by 20:30 the same day)"
    TT2_BATCH = "tt2", "TT2 batch (client approves by the second business day)"
    TT3_CARD = "tt3", "TT3 card and PIN (at a terminal)"


class MandateValueType(models.TextChoices):
    FIXED = "fixed", "Fixed"
    VARIABLE = "variable", "Variable"
    USAGE_BASED = "usage_based", "Usage-based"


class DebitSequence(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    ONCE_OFF = "once_off", "Once-off"


class MandateFrequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    FORTNIGHTLY = "fortnightly", "Fortnightly"
    MONTHLY = "monthly", "Monthly"


class AdjustmentCategory(models.TextChoices):
    NEVER = "never", "Never"
    QUARTERLY = "quarterly", "Quarterly"
    BIANNUALLY = "biannually", "Biannually"
    ANNUALLY = "annually", "Annually"
    REPO = "repo", "Repo rate"


class MandateState(models.TextChoices):
    AWAITING_SIGNATURE = "awaiting_signature", "Awaiting the client's signature"
    SIGNED = "signed", "Signed: ready to send to the bank"
    AUTHENTICATING = "authenticating", "Waiting for the client to authenticate at the bank"
    APPROVED = "approved", "Approved by the client's bank"
    REJECTED = "rejected", "Rejected"
    TIMED_OUT = "timed_out", "Timed out (the client did not answer)"
    CANCELLED = "cancelled", "Cancelled"


# The bank decided: nothing more will happen to a mandate (or amendment) in these states.
CLOSED_MANDATE_STATES = (MandateState.REJECTED, MandateState.TIMED_OUT, MandateState.CANCELLED)
MAX_TRACKING_DAYS = 10


class DebiCheckMandate(models.Model):
    """A DebiCheck mandate: the client authorises, at their bank, collections for a loan up to a
    maximum. The signed document of its terms is a signing.Mandate (OTP or hand, the signing rules);
    the bank's authentication (TT1/TT2/TT3) comes after. Collections for the loan go only against
    an approved mandate. The contract reference is never reused, also after a cancel."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="debicheck_mandates")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="debicheck_mandates")
    account = models.ForeignKey(StreamAccount, on_delete=models.PROTECT, related_name="debicheck_mandates",
                                help_text="The debtor's bank account (cannot be amended: a new mandate)")
    contract_reference = models.CharField(max_length=24)
    authentication = models.CharField(max_length=12, choices=AuthenticationType.choices)
    value_type = models.CharField(max_length=12, choices=MandateValueType.choices, default=MandateValueType.FIXED)
    debit_sequence = models.CharField(max_length=10, choices=DebitSequence.choices, default=DebitSequence.RECURRING)
    instalment_amount = models.DecimalField(**MONEY)
    maximum_collection = models.DecimalField(**MONEY)
    frequency = models.CharField(max_length=12, choices=MandateFrequency.choices, default=MandateFrequency.MONTHLY)
    collection_day = models.PositiveSmallIntegerField(help_text="Weekly 1–7, fortnightly 1–14, monthly 1–30 or 99 (last day)")
    first_collection_date = models.DateField()
    date_adjustment = models.BooleanField(default=False, help_text="The bank may move a collection off a non-business day")
    adjustment_category = models.CharField(max_length=12, choices=AdjustmentCategory.choices, default=AdjustmentCategory.NEVER)
    adjustment_amount = models.DecimalField(**MONEY, null=True, blank=True)
    adjustment_rate = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True, help_text="Percent")
    tracking_days = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=20, choices=MandateState.choices, default=MandateState.AWAITING_SIGNATURE)
    document = models.OneToOneField("signing.Mandate", null=True, blank=True, on_delete=models.PROTECT, related_name="debicheck",
                                    help_text="The signed document of the current terms")
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's mandate reference")
    authenticate_by = models.DateTimeField(null=True, blank=True, help_text="When the bank times the request out")
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=200, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Never reused, also after a cancel: no condition on purpose.
            models.UniqueConstraint(fields=["entity", "contract_reference"], name="debicheck_contract_reference_once"),
            models.CheckConstraint(condition=models.Q(instalment_amount__gt=0), name="debicheck_instalment_positive"),
            models.CheckConstraint(condition=models.Q(maximum_collection__gte=models.F("instalment_amount"))
                                   & models.Q(maximum_collection__lte=models.F("instalment_amount") * Decimal("1.5")),
                                   name="debicheck_maximum_collection_range"),
            models.CheckConstraint(condition=models.Q(tracking_days__lte=MAX_TRACKING_DAYS), name="debicheck_tracking_days"),
            models.CheckConstraint(
                condition=(models.Q(frequency="weekly", collection_day__gte=1, collection_day__lte=7))
                | (models.Q(frequency="fortnightly", collection_day__gte=1, collection_day__lte=14))
                | (models.Q(frequency="monthly") & ((models.Q(collection_day__gte=1) & models.Q(collection_day__lte=30))
                                                   | models.Q(collection_day=99))),
                name="debicheck_collection_day"),
        ]

    def __str__(self) -> str:
        return f"DebiCheck mandate {self.contract_reference}"

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_MANDATE_STATES


class MandateAmendment(models.Model):
    """A change of the instalment, maximum collection or collection day of a mandate: the client
    signs the new terms and authenticates again at the bank; until the bank approves, the mandate
    keeps its old terms."""

    mandate = models.ForeignKey(DebiCheckMandate, on_delete=models.PROTECT, related_name="amendments")
    number = models.PositiveSmallIntegerField()
    instalment_amount = models.DecimalField(**MONEY)
    maximum_collection = models.DecimalField(**MONEY)
    collection_day = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=MandateState.choices, default=MandateState.AWAITING_SIGNATURE)
    document = models.OneToOneField("signing.Mandate", null=True, blank=True, on_delete=models.PROTECT, related_name="amendment")
    reference = models.CharField(max_length=40, blank=True, help_text="The stream's amendment reference")
    authenticate_by = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["mandate", "number"], name="mandate_amendment_number"),
            models.UniqueConstraint(fields=["mandate"], condition=models.Q(status__in=["awaiting_signature", "signed", "authenticating"]),
                                    name="mandate_one_open_amendment"),
            models.CheckConstraint(condition=models.Q(maximum_collection__gte=models.F("instalment_amount"))
                                   & models.Q(maximum_collection__lte=models.F("instalment_amount") * Decimal("1.5"))
                                   & models.Q(instalment_amount__gt=0),
                                   name="amendment_maximum_collection_range"),
        ]

    def __str__(self) -> str:
        return f"Amendment {self.number} of {self.mandate}"
