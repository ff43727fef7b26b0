"""Settings of the automatic SMS batches and the MIS SMS of each entity, and the record of each
day's run (DOMAIN §3, §5).

A run row per entity, kind and local business day is claimed under its row lock before anything
is sent, so two consumers never work on the same day at once, and marked finished only when every
message of the day is in the outbox. The outbox's unique (entity, idempotency_key) is what makes a
message go once: every automatic message carries a key naming its client, type and event."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from imali.core.money import MAX_AMOUNT

MONEY = {"max_digits": 14, "decimal_places": 2}
DEFAULT_RUN_AT = dt.time(8, 0)


class AutomaticSetup(models.Model):
    """Which automatic batches an entity sends, with their settings. One row per entity."""

    entity = models.OneToOneField("tenancy.Entity", on_delete=models.CASCADE, related_name="automatic_setup")
    run_at = models.TimeField(default=DEFAULT_RUN_AT, help_text="Local time (the entity's zone) the day's batches go")
    due_enabled = models.BooleanField("payment-due reminder", default=False)
    due_days_before = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(30)],
        help_text="Days before the due date the reminder goes")
    arrears_enabled = models.BooleanField("payment arrears", default=False)
    arrears_minimum = models.DecimalField(
        **MONEY, default=Decimal("50.00"), validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(MAX_AMOUNT)],
        help_text="Clients owing less than this in arrears get no message")
    arrears_repeat_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text="A client still in arrears is reminded again after this many days")
    received_enabled = models.BooleanField("payment received", default=False)
    birthday_enabled = models.BooleanField("birthday greetings", default=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    def __str__(self) -> str:
        return f"automatic SMS of {self.entity_id}"

    @property
    def any_enabled(self) -> bool:
        return self.due_enabled or self.arrears_enabled or self.received_enabled or self.birthday_enabled


class MisStream(models.TextChoices):
    MANAGEMENT = "management", "Management Daily"
    CASH_FLOW = "cash_flow", "Cash Flow Daily"
    BRANCH = "branch", "Daily (per branch)"
    MONTHLY = "monthly", "Monthly summary"


class MisSetup(models.Model):
    """The MIS SMS an entity sends its managers, and when. One row per entity; the recipients of
    each stream are MisRecipient rows."""

    entity = models.OneToOneField("tenancy.Entity", on_delete=models.CASCADE, related_name="mis_setup")
    run_at = models.TimeField(default=DEFAULT_RUN_AT, help_text="Local time (the entity's zone) the MIS SMS go")
    management_enabled = models.BooleanField("Management Daily", default=False)
    cash_flow_enabled = models.BooleanField("Cash Flow Daily", default=False)
    branch_enabled = models.BooleanField("Daily (per branch)", default=False)
    monthly_enabled = models.BooleanField("Monthly summary", default=False,
                                          help_text="Sent on the first day of the month, for the month before")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    def __str__(self) -> str:
        return f"MIS SMS of {self.entity_id}"

    def enabled(self, stream: str) -> bool:
        return bool(getattr(self, f"{stream}_enabled"))

    @property
    def any_enabled(self) -> bool:
        return any(self.enabled(s) for s in MisStream.values)


class MisRecipient(models.Model):
    """A user who receives one MIS stream (on the cellphone of their user record)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    stream = models.CharField(max_length=12, choices=MisStream.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mis_streams")

    class Meta:
        ordering = ["stream", "user_id"]
        constraints = [models.UniqueConstraint(fields=["stream", "user"], name="mis_recipient_once_per_stream")]
        indexes = [models.Index(fields=["entity", "stream"], name="mis_recipient_entity_stream")]

    def __str__(self) -> str:
        return f"{self.stream}: {self.user_id}"


class RunKind(models.TextChoices):
    AUTOMATIC = "automatic", "Automatic SMS"
    MIS = "mis", "MIS SMS"


class DailyRun(models.Model):
    """One entity's automatic SMS (or MIS SMS) for one local business day.

    Claimed by a consumer under the row lock (`lease_until` in the future means someone is at it);
    `finished_at` set once every message of the day is queued. A consumer that died leaves the
    lease to lapse; the next one runs the day again and the outbox keys skip what was queued."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=RunKind.choices)
    business_date = models.DateField()
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=40, blank=True, help_text="The claim of the consumer at it")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per message type or stream: queued, skipped (with reasons), credits, process log id, or why not sent.
    results = models.JSONField(default=dict, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-business_date", "kind"]
        constraints = [models.UniqueConstraint(fields=["entity", "kind", "business_date"], name="daily_run_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.entity_id} {self.business_date}"
