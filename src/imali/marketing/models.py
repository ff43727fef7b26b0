"""Client marketing (seed 002): a data set collected from filters and kept with who ran it, when,
how and how long; its rows, one per client, with every column of the seed; and the entity's named
custom messages (SMS and email) sent from a data set."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .columns import BOOL, COLUMNS, DATE, INT, LONGTEXT, MONEY, PCT, TEXT

MONEY_FIELD = {"max_digits": 14, "decimal_places": 2}


class DataSetState(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Collecting"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class DataSet(models.Model):
    """One run of "Process Client Marketing": the filters as checked, who ran it and when, how
    far it is (progress), how many rows it kept and how long it took."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    filters = models.JSONField(default=dict, blank=True)
    # The entity's local day the figures are taken on (arrears, days since, obligation buckets).
    as_of = models.DateField()
    state = models.CharField(max_length=8, choices=DataSetState.choices, default=DataSetState.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Clients the filters chose (known once the run starts)")
    progress = models.PositiveIntegerField(default=0, help_text="Rows kept so far")
    row_count = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity", "created_at"], name="mkt_dataset_entity_created")]

    def __str__(self) -> str:
        return f"Client marketing data set {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (DataSetState.DONE, DataSetState.FAILED)

    @property
    def with_settlement(self) -> bool:
        return bool(self.filters.get("calculate_settlement"))

    @property
    def percent(self) -> int:
        if self.state == DataSetState.DONE:
            return 100
        return min(99, self.progress * 100 // self.total) if self.total else 0


def _column_field(kind: str) -> models.Field:
    if kind == TEXT:
        return models.CharField(max_length=200, blank=True, default="")
    if kind == LONGTEXT:
        return models.TextField(blank=True, default="")
    if kind == INT:
        return models.BigIntegerField(null=True, blank=True)
    if kind == MONEY:
        return models.DecimalField(**MONEY_FIELD, null=True, blank=True)
    if kind == PCT:
        return models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    if kind == DATE:
        return models.DateField(null=True, blank=True)
    if kind == BOOL:
        return models.BooleanField(null=True, blank=True)
    raise ValueError(kind)


class DataSetRowBase(models.Model):
    dataset = models.ForeignKey(DataSet, on_delete=models.CASCADE, related_name="rows")
    client = models.ForeignKey("clients.Client", null=True, on_delete=models.SET_NULL, related_name="+")
    # Where the row stands in the data set as collected (by client number): a stable order for paging.
    seq = models.PositiveIntegerField()

    class Meta:
        abstract = True


# One field per column of columns.COLUMNS, added in that order (the migration lists them).
for _column in COLUMNS:
    DataSetRowBase.add_to_class(_column.key, _column_field(_column.kind))


class DataSetRow(DataSetRowBase):
    """One client of a data set, every column as it was when the data set was collected."""

    class Meta:
        ordering = ["dataset", "seq"]
        constraints = [models.UniqueConstraint(fields=["dataset", "seq"], name="mkt_row_seq_per_dataset")]
        indexes = [models.Index(fields=["dataset", "client"], name="mkt_row_dataset_client")]

    def __str__(self) -> str:
        return f"{self.dataset_id}/{self.seq} client {self.client_number}"


class MessageChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class CustomMessage(models.Model):
    """A named message an entity sends from a data set ("MaxSMS / MaxMail Custom Messages"): many
    per channel, each with merge fields filled from the data set's columns."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=5, choices=MessageChannel.choices)
    name = models.CharField(max_length=80)
    subject = models.CharField(max_length=200, blank=True, help_text="Email only")
    text = models.TextField()
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["channel", "name"]
        constraints = [models.UniqueConstraint(fields=["entity", "channel", "name"], name="mkt_message_name_per_channel")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.name}"


class SendState(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Sending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class MarketingSend(models.Model):
    """One send of a custom message to a data set's clients (all, or the rows ticked). Recorded once
    per (entity, key), so a double click sends once; its run writes one process-log entry."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(DataSet, on_delete=models.PROTECT, related_name="sends")
    message = models.ForeignKey(CustomMessage, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=5, choices=MessageChannel.choices)
    # The rows ticked (DataSetRow ids); empty: every row of the data set.
    row_ids = models.JSONField(default=list, blank=True)
    idempotency_key = models.CharField(max_length=120)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=SendState.choices, default=SendState.QUEUED)
    background = models.BooleanField(default=False)
    selected = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0)
    dropped = models.PositiveIntegerField(default=0)
    dropped_reasons = models.JSONField(default=dict, blank=True)
    credits = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    process = models.ForeignKey("messaging.ProcessLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["entity", "idempotency_key"], name="mkt_send_once_per_key")]

    def __str__(self) -> str:
        return f"Marketing send {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (SendState.DONE, SendState.FAILED)
