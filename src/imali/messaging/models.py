"""Messaging data: credit ledgers, templates, the outbox, delivery reports, inbound messages,
gateways and routes, process log and marketing opt-outs."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class MessageType(models.TextChoices):
    OTP = "otp", "OTP"
    ARREARS = "arrears", "Payment arrears"
    PAYMENT_RECEIVED = "payment_received", "Payment received"
    NEW_LOAN = "new_loan", "New loan"
    REPEAT_LOAN = "repeat_loan", "Repeat loan"
    PAYMENT_FINAL = "payment_final", "Final payment"
    CRM = "crm", "CRM"
    BIRTHDAY = "birthday", "Birthday"
    MIS = "mis", "MIS report"
    MARKETING = "marketing", "Marketing"
    SINGLE = "single", "Single SMS"
    REPLY = "reply", "Reply"
    PAYMENT_DUE = "payment_due", "Payment due reminder"
    COLLECTION_FAILED = "collection_failed", "Debit order declined or returned unpaid"


class Priority(models.IntegerChoices):
    """Lower is sent first."""

    OTP = 0, "OTP"
    TRANSACTIONAL = 1, "Transactional"
    BULK = 2, "Bulk"


BULK_TYPES = frozenset({MessageType.MARKETING, MessageType.BIRTHDAY, MessageType.CRM, MessageType.ARREARS})


def priority_for(message_type: str) -> int:
    if message_type == MessageType.OTP:
        return Priority.OTP
    if message_type in BULK_TYPES:
        return Priority.BULK
    return Priority.TRANSACTIONAL


class CreditAccount(models.Model):
    """Settings of one entity's ledger for one channel; the row is also the lock senders take."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="credit_accounts")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    monthly_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no monthly limit")
    low_warning_amount = models.PositiveIntegerField(default=0)
    low_warning_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when the balance falls below the warning amount, cleared when it rises above: one email per crossing.
    low_warning_sent = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "channel"], name="credit_account_per_channel")]

    def __str__(self) -> str:
        return f"{self.entity_id}:{self.channel}"


class CreditEntryKind(models.TextChoices):
    ASSIGNMENT = "assignment", "Assigned by the operator"
    DEBIT = "debit", "Debit for messages"
    REFUND = "refund", "Refund for messages not sent"
    ADJUSTMENT = "adjustment", "Adjustment by the operator"


class CreditEntry(models.Model):
    """One movement on a ledger. The balance is the running total (`balance_after` of the latest
    entry), written under the account's row lock and held non-negative by a check constraint."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="entries")
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=12, choices=CreditEntryKind.choices)
    amount = models.BigIntegerField(help_text="Positive adds credits, negative spends them")
    balance_after = models.BigIntegerField()
    messages = models.PositiveIntegerField(default=0)
    reference = models.CharField(max_length=120, blank=True)
    note = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="credit_balance_never_negative")]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} → {self.balance_after}"


class MessageTemplate(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="message_templates")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    message_type = models.CharField(max_length=20, choices=MessageType.choices)
    text = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["message_type"]
        constraints = [models.UniqueConstraint(fields=["entity", "channel", "message_type"], name="template_per_type")]

    def __str__(self) -> str:
        return f"{self.message_type}: {self.text[:40]}"


class TemplateRevision(models.Model):
    """Update history: who changed a template, when, from what to what."""

    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="revisions")
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    old_text = models.TextField(blank=True)
    new_text = models.TextField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.template_id} at {self.changed_at:%Y-%m-%d %H:%M}"


class OutboxStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# A run's kind as staff read it, on the screen and in its exports ("Message batch", not the key).
PROCESS_KINDS = {
    "message_batch": "Message batch", "client_marketing": "Client marketing", "automatic": "Automatic SMS",
    "mis": "MIS SMS", "bulk_send": "Bulk send", "get_sms_responses": "SMS replies fetched",
    "reply_notification": "Reply notification", "email_test": "Test email",
}


def process_kind_label(kind: str) -> str:
    """A run's kind in words; a kind not named above reads as its words rather than its key."""
    return PROCESS_KINDS.get(kind) or (kind or "").replace("_", " ").capitalize()


def criteria_label(key: str) -> str:
    """A run's criterion in words ("Business date", not "business_date")."""
    return str(key).replace("_", " ").capitalize()


class ProcessLog(models.Model):
    """One entry per send or import run (DOMAIN §3)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="process_logs")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=40)
    message_type = models.CharField(max_length=20, choices=MessageType.choices, blank=True)
    criteria = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queued = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    skipped_reasons = models.JSONField(default=dict, blank=True)
    credits = models.PositiveBigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["entity", "started_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.message_type} queued {self.queued}"


class ReservationStatus(models.TextChoices):
    OPEN = "open", "Open: rows being written"
    SETTLED = "settled", "Settled"


class CreditReservation(models.Model):
    """Credits set aside for one bulk run before its rows are written.

    The ledger is debited for every message the run may queue in one short transaction under the
    account lock; the rows are then written outside that lock, chunk by chunk; settlement refunds
    what the run did not use (keys already queued, a chunk that failed, a run that died). The
    credits used are the credits of the outbox rows of the run's process, so settling twice, or
    by the sweeper after a crash, gives the same answer. A chunk writes only while its
    reservation is open and holds the reservation's row lock until it commits: settlement waits
    for a chunk in flight and no row is ever written after its run was settled."""

    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="reservations")
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    process = models.OneToOneField(ProcessLog, on_delete=models.PROTECT, related_name="reservation")
    amount = models.PositiveBigIntegerField(help_text="Credits debited when the run started")
    messages = models.PositiveIntegerField(help_text="Messages the reservation pays for at most")
    status = models.CharField(max_length=8, choices=ReservationStatus.choices, default=ReservationStatus.OPEN)
    used = models.PositiveBigIntegerField(default=0, help_text="Credits of the rows written, known at settlement")
    refunded = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Touched by every chunk that commits: a run whose heartbeat is old has died (the sweeper settles it).
    heartbeat_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.CharField(max_length=20, blank=True, help_text="run, failed run, or sweeper")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="reservation_open")]

    def __str__(self) -> str:
        return f"reservation {self.pk}: {self.amount} credits, {self.status}"


class OutboxMessage(models.Model):
    # Every index of this table is written again by each claim, record and receipt of every message
    # (the status changes, so PostgreSQL cannot update in place): no index without a reader, and
    # partial ones where most rows have nothing to find. The entity's own index is the prefix of
    # the (entity, ...) ones below; client and user are indexed where set (their PROTECT checks).
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="outbox_messages", db_index=False)
    client = models.ForeignKey("clients.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             db_index=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    number = models.CharField(max_length=16, help_text="E.164")
    country = models.CharField(max_length=2, blank=True)
    message_type = models.CharField(max_length=20, choices=MessageType.choices)
    text = models.TextField()
    segments = models.PositiveSmallIntegerField()
    credits = models.PositiveSmallIntegerField()
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    idempotency_key = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=OutboxStatus.choices, default=OutboxStatus.QUEUED)
    gateway = models.CharField(max_length=40, blank=True)
    provider_message_id = models.CharField(max_length=80, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Direct marketing queued outside the CPA Regulation 4 hours: the first minute it may go out
    # (shown as "Scheduled" until then; its age limit counts from here, not from created_at).
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # A consumer's lease: rows claimed but not yet recorded are retried after it lapses.
    claimed_until = models.DateTimeField(null=True, blank=True)
    process = models.ForeignKey(ProcessLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "idempotency_key"], name="outbox_idempotency_key"),
        ]
        indexes = [
            # The queue alone, in claim order: a message leaves it when it is submitted (or ends).
            models.Index(fields=["priority", "next_attempt_at", "id"], condition=models.Q(status="queued"),
                         name="outbox_queue"),
            # Receipts find their message by it: only messages a gateway accepted have one.
            models.Index(fields=["provider_message_id"], condition=models.Q(provider_message_id__gt=""),
                         name="outbox_provider_ref"),
            models.Index(fields=["client"], condition=models.Q(client__isnull=False), name="outbox_client"),
            models.Index(fields=["user"], condition=models.Q(user__isnull=False), name="outbox_user"),
            models.Index(fields=["entity", "created_at"], name="outbox_entity_created"),
            models.Index(fields=["entity", "client", "created_at"], name="outbox_entity_client"),
            models.Index(fields=["number", "created_at"], name="outbox_number"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.message_type} {self.status}"


class DeliveryReport(models.Model):
    """A delivery receipt as received, once per provider message id; applied to the outbox when
    the submission it names is known (a receipt may overtake the record of its submit_sm_resp)."""

    gateway = models.CharField(max_length=40)
    provider_message_id = models.CharField(max_length=80)
    state = models.CharField(max_length=10)
    error_code = models.CharField(max_length=10, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    applied = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "provider_message_id"], name="delivery_report_once")]
        indexes = [models.Index(fields=["applied", "provider_message_id"], name="dlr_pending")]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.provider_message_id} {self.state}"


class InboundMessage(models.Model):
    """A mobile-originated message, stored once per provider id."""

    gateway = models.CharField(max_length=40)
    provider_id = models.CharField(max_length=80)
    entity = models.ForeignKey("tenancy.Entity", null=True, blank=True, on_delete=models.PROTECT, related_name="inbound_messages")
    client = models.ForeignKey("clients.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    number = models.CharField(max_length=20)
    to_address = models.CharField(max_length=20, blank=True)
    text = models.TextField()
    is_stop = models.BooleanField(default=False)
    handled = models.BooleanField(default=False, help_text="Taken by the replies or SMS-banking features")
    # A long message whose parts did not all arrive in time: stored with what came, gaps marked.
    incomplete = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Set by the replies run ("Get SMS Responses", daily): the outbound message this one answers
    # (the latest to the number before it arrived), and when the run took it (empty: new).
    in_reply_to = models.ForeignKey("OutboxMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    collected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["gateway", "provider_id"], name="inbound_once_per_provider_id")]
        indexes = [models.Index(fields=["entity", "received_at"])]

    def __str__(self) -> str:
        return f"{self.number}: {self.text[:40]}"


class InboundPart(models.Model):
    """One part of a concatenated mobile-originated message, kept until its set is complete (then
    the message is stored whole and the parts deleted) or too old (then stored incomplete). In the
    database rather than in a consumer's memory: a restart loses none, and the parts of one
    message may reach different consumers."""

    gateway = models.CharField(max_length=40)
    number = models.CharField(max_length=20)
    to_address = models.CharField(max_length=20, blank=True)
    reference = models.PositiveIntegerField()
    total = models.PositiveSmallIntegerField()
    seq = models.PositiveSmallIntegerField()
    text = models.TextField()
    provider_id = models.CharField(max_length=80)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "number", "to_address", "reference", "total", "seq"],
                                               name="inbound_part_once")]

    def __str__(self) -> str:
        return f"{self.number} ref {self.reference} part {self.seq}/{self.total}"


class MarketingOptOut(models.Model):
    """A number that answered STOP: permanent, never marketed to again by this entity."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    number = models.CharField(max_length=16)
    client = models.ForeignKey("clients.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    inbound = models.ForeignKey(InboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entity", "number"], name="optout_once_per_number")]

    def __str__(self) -> str:
        return f"{self.number} opted out"


class GatewayKind(models.TextChoices):
    SMPP = "smpp", "SMPP 3.4 (an SMSC)"
    AFRICASTALKING = "africastalking", "Africa's Talking (HTTP)"
    CLICKATELL = "clickatell", "Clickatell One API (HTTP)"


class BindMode(models.TextChoices):
    TRANSCEIVER = "trx", "Transceiver (one session)"
    TRANSMITTER_RECEIVER = "tx_rx", "Transmitter + receiver (two sessions)"


class ReceiptIdFormat(models.TextChoices):
    # Mirrors adapters.smpp.ReceiptIdFormat (the transport takes the value).
    AUTO = "auto", "Automatic: the same id, whatever its case, leading zeros or padding"
    EXACT = "exact", "Exactly as written (ids that tell upper from lower case)"
    HEX_DEC = "hex_dec", "Hexadecimal when sent, decimal in receipts"
    DEC_HEX = "dec_hex", "Decimal when sent, hexadecimal in receipts"


class Gateway(models.Model):
    """An SMS gateway: an SMSC over SMPP, or an HTTP aggregator. Routes choose among them per
    entity and country, and the dispatcher fails over between them."""

    name = models.SlugField(max_length=40, unique=True)
    kind = models.CharField(max_length=16, choices=GatewayKind.choices, default=GatewayKind.SMPP)
    # SMPP
    host = models.CharField(max_length=120, default="127.0.0.1")
    port = models.PositiveIntegerField(default=0)
    system_id = models.CharField(max_length=16, blank=True)
    password = models.CharField(max_length=9, blank=True)
    # HTTP aggregators
    base_url = models.URLField(blank=True)
    api_key = models.CharField(max_length=200, blank=True)
    account = models.CharField(max_length=80, blank=True, help_text="Africa's Talking username")
    source_addr = models.CharField(max_length=21, default="Imali")
    # Empty: from the sender address (alphanumeric 5/0, short code 3/0, full number 1/1).
    source_addr_ton = models.PositiveSmallIntegerField(null=True, blank=True)
    source_addr_npi = models.PositiveSmallIntegerField(null=True, blank=True)
    dest_addr_ton = models.PositiveSmallIntegerField(default=1, help_text="1: international")
    dest_addr_npi = models.PositiveSmallIntegerField(default=1, help_text="1: ISDN (E.164)")
    # Transmitter + receiver by default: the dispatchers submit on transmitter sessions while a
    # receiver process takes the receipts (one per message) on the receiver session, off the
    # submitting path. Transceiver for an SMSC that allows one session only.
    bind_mode = models.CharField(max_length=5, choices=BindMode.choices, default=BindMode.TRANSMITTER_RECEIVER)
    # How the SMSC's receipts name a message, next to the id its submit_sm_resp gave: a receipt
    # that matches no message leaves that message Sent for ever (docs/messaging.md, Receipt ids).
    receipt_id_format = models.CharField(max_length=8, choices=ReceiptIdFormat.choices, default=ReceiptIdFormat.AUTO)
    window = models.PositiveSmallIntegerField(default=50)
    rate_per_second = models.PositiveIntegerField(default=5000)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_http(self) -> bool:
        from .adapters.africastalking import HTTP_KINDS

        return self.kind in HTTP_KINDS

    def destination_problem(self, *, resolve: bool = False) -> tuple[str, str] | None:
        """(field, why) when the gateway's address is not one the server may connect to
        (core/destination.py, with the operator's trust: gateways are written only by the operator's
        commands, so a private network is allowed, the metadata service and loopback outside
        development are not); `resolve` also checks where the name points now."""
        from imali.core import destination

        rules = {"trust": destination.Trust.OPERATOR, **destination.rules()}
        if self.is_http:
            check = destination.resolved_problem if resolve else destination.base_url_problem
            problem = check(self.base_url, **rules)
            return ("base_url", problem) if problem else None
        if not 1 <= (self.port or 0) <= 65535:
            return ("port", "Enter a port between 1 and 65535.")
        if resolve:
            problem = destination.resolved_host_problem(self.host, self.port, **rules)
        else:
            problem = destination.host_problem(self.host, **rules)
        return ("host", problem) if problem else None

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from imali.core import destination

        refused = self.destination_problem()
        if refused:
            field, problem = refused
            raise ValidationError({field: [ValidationError(problem, code=destination.CODE)]})


class Route(models.Model):
    """Which gateway carries an entity's messages to a country; lower rank is tried first.
    Empty entity or country means any."""

    entity = models.ForeignKey("tenancy.Entity", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    country = models.CharField(max_length=2, blank=True)
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="routes")
    rank = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["rank", "id"]

    def __str__(self) -> str:
        return f"{self.entity_id or 'any'}/{self.country or 'any'} → {self.gateway_id} (rank {self.rank})"


class GatewayHealth(models.Model):
    """What a dispatcher or receiver process last saw of a gateway: bound (connected) or why not,
    so the operator's screen, in the web process, can show it. One row per gateway and process
    role (the dispatcher's sessions, the receiver's): written when the state changes and every
    `messaging.health.HEARTBEAT_SECONDS` otherwise, never per message. Several dispatchers share
    the "send" row: the last one to report wins, and a stale `seen_at` says none reports any more."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="health")
    role = models.CharField(max_length=8)  # adapters.smpp.Role: both, send, receive
    connected = models.BooleanField(default=False)
    problem = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "role"], name="gateway_health_per_role")]

    def __str__(self) -> str:
        return f"{self.gateway_id}/{self.role}: {'connected' if self.connected else self.problem or 'down'}"


class EntityMessageType(models.Model):
    """An entity's switch for one message type (DOMAIN §3 "Enable SMS types"). No row means the
    type is enabled: a new entity, or a type added later, sends until someone switches it off."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="message_type_switches")
    message_type = models.CharField(max_length=20, choices=MessageType.choices)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["message_type"]
        constraints = [models.UniqueConstraint(fields=["entity", "message_type"], name="message_type_switch_per_entity")]

    def __str__(self) -> str:
        return f"{self.entity_id}:{self.message_type} {'on' if self.enabled else 'off'}"


class ReplyNotifyRecipient(models.Model):
    """Reply-notification setup (DOMAIN §3): a user told of new replies after each replies run,
    by email (the email channel, one email credit) and/or in the app."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    by_email = models.BooleanField(default=False)
    in_app = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["user__username"]
        constraints = [models.UniqueConstraint(fields=["entity", "user"], name="reply_notify_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id} told of replies"


class ReplyNotice(models.Model):
    """An in-app notice: a replies run found new replies for this user's entity."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    process = models.ForeignKey(ProcessLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    replies = models.PositiveIntegerField()
    stops = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="reply_notice_unread")]

    def __str__(self) -> str:
        return f"{self.replies} replies for {self.user_id}"


class InboundCursor(models.Model):
    """How far the replies run has fetched an aggregator's incoming messages (Africa's Talking
    `lastReceivedId`), so each run asks only for what is new."""

    gateway = models.CharField(max_length=40, unique=True)
    last_received_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.gateway} after {self.last_received_id}"
