"""SMS-banking data: the entity's settings and keyword aliases, client PINs, the request log
(rate limits), field collections waiting for the branch, collection sheets with their codes, and
mobile-money providers whose SMS notices record payments."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Command(models.TextChoices):
    HELP = "help", "Help"
    BALANCE = "balance", "Balance"
    PIN = "pin", "Set PIN"
    STOP = "stop", "Stop marketing"
    START = "start", "Start marketing again"
    PAY = "pay", "Officer collection"
    SHEET = "sheet", "Collection-sheet code"
    NOTICE = "notice", "Payment notice"
    UNKNOWN = "unknown", "Not understood"


# The English keywords every entity has; aliases add words (local languages), never remove these.
DEFAULT_KEYWORDS: dict[str, str] = {
    "HELP": Command.HELP, "BALANCE": Command.BALANCE, "BAL": Command.BALANCE, "PIN": Command.PIN,
    "STOP": Command.STOP, "START": Command.START, "PAY": Command.PAY, "SHEET": Command.SHEET,
}
# Commands an alias may name (the officer's and the notice paths are not client words).
ALIASABLE = (Command.HELP, Command.BALANCE, Command.PIN, Command.STOP, Command.START, Command.PAY, Command.SHEET)


class BankingSettings(models.Model):
    """One entity's SMS-banking settings. Absent: SMS banking is off for the entity."""

    entity = models.OneToOneField("tenancy.Entity", on_delete=models.CASCADE, related_name="sms_banking")
    enabled = models.BooleanField(default=False)
    # The number or short code clients text (the MO "to" address). Used to find the entity of a
    # message from a phone no client or user of any entity has.
    service_address = models.CharField(max_length=20, blank=True)
    pin_max_failures = models.PositiveSmallIntegerField(default=3)
    pin_lock_minutes = models.PositiveIntegerField(default=60)
    requests_per_hour = models.PositiveSmallIntegerField(default=10)
    sheet_code_days = models.PositiveSmallIntegerField(default=3)

    def __str__(self) -> str:
        return f"SMS banking of {self.entity_id}"


class KeywordAlias(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="sms_keyword_aliases")
    word = models.CharField(max_length=20, help_text="One word, stored in capitals")
    command = models.CharField(max_length=12, choices=[(c.value, c.label) for c in ALIASABLE])

    class Meta:
        ordering = ["command", "word"]
        constraints = [models.UniqueConstraint(fields=["entity", "word"], name="sms_keyword_alias_once")]

    def __str__(self) -> str:
        return f"{self.word} → {self.command}"


class BankingPin(models.Model):
    """A client's SMS-banking PIN, as an Argon2 hash only."""

    client = models.OneToOneField("clients.Client", on_delete=models.CASCADE, related_name="banking_pin")
    pin_hash = models.CharField(max_length=200)
    failures = models.PositiveSmallIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    set_at = models.DateTimeField()
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    set_via = models.CharField(max_length=10, choices=[("branch", "At the branch"), ("sms", "By SMS"), ("api", "API")])

    def __str__(self) -> str:
        return f"PIN of client {self.client_id}"


class PinChange(models.Model):
    """A one-time code sent to the client's bound phone; the code (hashed) must come back with the
    new PIN before it is set."""

    client = models.ForeignKey("clients.Client", on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=200)
    expires_at = models.DateTimeField()
    tries = models.PositiveSmallIntegerField(default=0)
    used = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"PIN code for client {self.client_id}"


class BankingRequest(models.Model):
    """Each inbound message the engine answered: the request log and the per-number rate limit."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    inbound = models.OneToOneField("messaging.InboundMessage", on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=20)
    command = models.CharField(max_length=12, choices=Command.choices)
    outcome = models.CharField(max_length=40)
    reply = models.ForeignKey("messaging.OutboxMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity", "number", "created_at"])]

    def __str__(self) -> str:
        return f"{self.number}: {self.command} ({self.outcome})"


class RateCounter(models.Model):
    """The per-number request count of the current hour-long window: counted by one conditional
    UPDATE, so two messages of one phone handled at once cannot both slip under the limit."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=20)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "number"], name="sms_rate_counter_once")]

    def __str__(self) -> str:
        return f"{self.number}: {self.count}"


class CollectionStatus(models.TextChoices):
    UNVERIFIED = "unverified", "Unverified (cash not yet at the branch)"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class CollectionSource(models.TextChoices):
    OFFICER_SMS = "officer_sms", "Officer SMS"
    SHEET_CODE = "sheet_code", "Collection-sheet code"


class CollectionMessage(models.Model):
    """One officer SMS (or sheet code) that recorded field collections; its normalised text makes a
    repeat of the same message a duplicate."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    inbound = models.OneToOneField("messaging.InboundMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=12, choices=CollectionSource.choices)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "officer", "fingerprint"], name="collection_message_once")]

    def __str__(self) -> str:
        return f"Collection message {self.pk} of {self.officer_id}"


class FieldCollection(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(CollectionMessage, on_delete=models.PROTECT, related_name="collections")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    collected_on = models.DateField()
    status = models.CharField(max_length=12, choices=CollectionStatus.choices, default=CollectionStatus.UNVERIFIED)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=200, blank=True)
    receipt = models.OneToOneField("loans.Receipt", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity", "status", "created_at"])]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="field_collection_amount_positive")]

    def __str__(self) -> str:
        return f"{self.amount} from client {self.client_id} ({self.status})"


class CollectionSheet(models.Model):
    """A printed collection sheet: the officer's clients' instalments due, and the short code that
    records them all as paid in full when the officer sends it back."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    officer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=8)
    due_by = models.DateField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by_message = models.OneToOneField(CollectionMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["entity", "code"], name="collection_sheet_code_once")]

    def __str__(self) -> str:
        return f"Sheet {self.code}"


class CollectionSheetLine(models.Model):
    sheet = models.ForeignKey(CollectionSheet, on_delete=models.CASCADE, related_name="lines")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.amount} on loan {self.loan_id}"


class PaymentProvider(models.Model):
    """A mobile-money provider that sends an SMS per payment (G-Cash). `pattern` is a regular
    expression with the named groups phone, amount and ref."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=60)
    sender = models.CharField(max_length=20, help_text="The number or name the notices come from")
    pattern = models.CharField(max_length=400)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["entity", "sender"], name="payment_provider_sender_once")]

    def __str__(self) -> str:
        return self.name


class ProviderPayment(models.Model):
    """A payment notice recorded once per provider reference, unverified until a branch user
    confirms it (posting the receipt) or rejects it."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey(PaymentProvider, on_delete=models.PROTECT, related_name="payments")
    reference = models.CharField(max_length=60)
    phone = models.CharField(max_length=20)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    client = models.ForeignKey("clients.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The client's only open loan when the notice arrived: what confirming posts to.
    loan = models.ForeignKey("loans.Loan", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    receipt = models.OneToOneField("loans.Receipt", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=60)
    # A sender ID can be forged, so a notice is only a claim until a branch user has checked the
    # provider's statement and confirmed it: then the receipt is posted.
    status = models.CharField(max_length=12, choices=CollectionStatus.choices, default=CollectionStatus.UNVERIFIED)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["provider", "reference"], name="provider_payment_once")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount}"


class AnswerJob(models.Model):
    """An inbound message waiting for the answering worker (`manage.py smsbanking_answer`): the
    receiving process stores the messages of a burst in one go and leaves one row each here, so it
    never waits on the answers. The worker takes a batch in the transaction that answers it
    (locked, skipping rows another worker holds, on PostgreSQL) and deletes the rows with their
    answers: a worker that dies mid-batch leaves the rows to be taken again."""

    inbound = models.OneToOneField("messaging.InboundMessage", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    # A message that may carry a PIN or a code is stored masked the moment it is received; its
    # original waits here sealed (authenticated stream cipher keyed by the secret key, as the
    # OTPs in the outbox), never in clear, until the worker answers it and deletes the row.
    sealed = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Answer inbound {self.inbound_id}"
