"""A manual message batch as a user sent it: its type and criteria, who sent it, and how its run
went. The row is also the batch's idempotency record: one per (entity, key), so a double click or
a resubmitted form finds the batch already sent instead of sending again."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .types import BatchType


class BatchState(models.TextChoices):
    QUEUED = "queued", "Waiting to start"
    RUNNING = "running", "Sending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class MessageBatch(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    batch_type = models.CharField(max_length=20, choices=BatchType.choices)
    criteria = models.JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=120)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=BatchState.choices, default=BatchState.QUEUED)
    background = models.BooleanField(default=False, help_text="Run by the Huey consumer rather than in the request")
    # Recipients the rules chose when the run started; prepared counts them as their texts are made.
    selected = models.PositiveIntegerField(default=0)
    prepared = models.PositiveIntegerField(default=0)
    queued = models.PositiveIntegerField(default=0)
    dropped = models.PositiveIntegerField(default=0)
    dropped_reasons = models.JSONField(default=dict, blank=True)
    credits = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    process = models.ForeignKey("messaging.ProcessLog", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["entity", "idempotency_key"], name="message_batch_once_per_key")]
        indexes = [models.Index(fields=["entity", "created_at"], name="message_batch_entity_created")]

    def __str__(self) -> str:
        return f"{self.get_batch_type_display()} batch {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (BatchState.DONE, BatchState.FAILED)


class BatchPreviewRun(models.Model):
    """A preview too large to make inside a request (it renders and counts every recipient's SMS):
    made on the Huey consumer, with its progress, and kept for the user who asked to read, then
    Send or Back. Nothing is sent from it: the send checks everything again."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    batch_type = models.CharField(max_length=20, choices=BatchType.choices)
    criteria = models.JSONField(default=dict, blank=True)
    # The criteria form's key, carried on to the send so a double click still sends once.
    form_key = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8, choices=BatchState.choices, default=BatchState.QUEUED)
    selected = models.PositiveIntegerField(default=0)
    prepared = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity", "created_at"], name="batch_preview_entity_created")]

    def __str__(self) -> str:
        return f"{self.get_batch_type_display()} preview {self.pk} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (BatchState.DONE, BatchState.FAILED)
