"""Manual message batches over the API: preview, send and the status of a batch.

The same services as the screens (imali.batches.services): the preview writes nothing; the send
is recorded once per idempotency key (a retried call returns the batch already sent, status 200,
and sends nothing more); a large batch runs on the Huey consumer and its status shows how far it is.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import MoneyField, StrictIntegerField
from imali.batches import selectors
from imali.batches.models import BatchPreviewRun, BatchState, MessageBatch
from imali.batches.services import (
    batch_preview_request,
    batch_refresh_if_died,
    batch_resume,
    batch_send,
    drop_label,
    preview_of_run,
)
from imali.batches.types import BatchType, DropReason
from imali.clients.models import ClientStatus
from imali.loans.models import LoanStatus
from imali.tenancy.rights import Right

CRITERIA_HELP = ("Each type takes its own criteria: arrears (due_from, due_to, min_arrears), payment_received "
                 "(paid_from, paid_to, min_payment), new_loan and repeat_loan (employer), payment_final (none), crm "
                 "(branch, employer, client_status, has_open_loan), crm_loan_status (loan_status). A criterion the "
                 "type does not take is refused.")


class BatchCriteriaSerializer(serializers.Serializer):
    batch_type = serializers.ChoiceField(choices=BatchType.choices, help_text=CRITERIA_HELP)
    due_from = serializers.DateField(required=False, help_text="Arrears: instalments due from (YYYY-MM-DD)")
    due_to = serializers.DateField(required=False, help_text="Arrears: instalments due to")
    min_arrears = MoneyField(required=False, allow_zero=True, help_text="Arrears: the client's arrears at least this")
    paid_from = serializers.DateField(required=False, help_text="Payment received: payments from")
    paid_to = serializers.DateField(required=False, help_text="Payment received: payments to")
    min_payment = MoneyField(required=False, allow_zero=True, help_text="Payment received: a payment at least this")
    employer = StrictIntegerField(required=False, min_value=1, help_text="Employer id (blank: all)")
    branch = StrictIntegerField(required=False, min_value=1, help_text="CRM: branch id (blank: all)")
    client_status = serializers.ChoiceField(choices=ClientStatus.choices, required=False, help_text="CRM: client status")
    has_open_loan = serializers.ChoiceField(choices=["yes", "no"], required=False, help_text="CRM: a loan on the book or not")
    loan_status = serializers.ChoiceField(choices=LoanStatus.choices, required=False,
                                          help_text="CRM on loan status: the loan status")

    def criteria(self) -> tuple[str, dict]:
        data = dict(self.validated_data)
        return data.pop("batch_type"), data


class BatchSendSerializer(BatchCriteriaSerializer):
    idempotency_key = serializers.CharField(max_length=64, help_text="Any unique string of up to 64 characters; resending "
                                            "it sends nothing more.")


class DroppedSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="One of: " + ", ".join(DropReason.values) + " (or invalid_number, already_queued)")
    label = serializers.CharField()
    count = StrictIntegerField()


class CriterionShownSerializer(serializers.Serializer):
    label = serializers.CharField()
    value = serializers.CharField()


class BatchPreviewSerializer(serializers.Serializer):
    batch_type = serializers.ChoiceField(choices=BatchType.choices)
    message_type = serializers.CharField()
    criteria = serializers.DictField(help_text="The criteria as checked")
    criteria_shown = serializers.SerializerMethodField()
    type_enabled = serializers.BooleanField(help_text="False: the SMS type is switched off and nothing can be sent")
    selected = StrictIntegerField(help_text="Clients the rules chose")
    recipients = StrictIntegerField(help_text="SMSs that would be sent")
    dropped = serializers.SerializerMethodField()
    template = serializers.CharField(help_text="The text as written, with its merge fields")
    sample = serializers.CharField(help_text="The first recipient's message ('' when nobody is reached)")
    segments = StrictIntegerField()
    credits_needed = StrictIntegerField()
    credits_left = StrictIntegerField()
    can_send = serializers.BooleanField()

    @extend_schema(responses=CriterionShownSerializer(many=True))
    def get_criteria_shown(self, preview) -> list[dict]:
        return [{"label": label, "value": str(value)} for label, value in preview.criteria_shown]

    @extend_schema(responses=DroppedSerializer(many=True))
    def get_dropped(self, preview) -> list[dict]:
        return [{"reason": r, "label": label, "count": n} for r, label, n in preview.dropped_rows]


class MessageBatchSerializer(serializers.ModelSerializer):
    dropped_reasons = serializers.SerializerMethodField()
    sent_by = serializers.CharField(source="created_by.username", read_only=True)
    process_log = StrictIntegerField(source="process_id", read_only=True, allow_null=True)

    class Meta:
        model = MessageBatch
        fields = ["id", "batch_type", "criteria", "state", "background", "selected", "prepared", "queued", "dropped",
                  "dropped_reasons", "credits", "error", "sent_by", "process_log", "created_at", "started_at",
                  "finished_at"]
        read_only_fields = fields

    @extend_schema(responses=DroppedSerializer(many=True))
    def get_dropped_reasons(self, batch) -> list[dict]:
        return [{"reason": r, "label": drop_label(r), "count": n} for r, n in (batch.dropped_reasons or {}).items()]


class BatchPreviewRunSerializer(serializers.ModelSerializer):
    preview = serializers.SerializerMethodField(help_text="The preview once made (state done), else null")

    class Meta:
        model = BatchPreviewRun
        fields = ["id", "batch_type", "criteria", "state", "selected", "prepared", "error", "created_at", "finished_at",
                  "preview"]
        read_only_fields = fields

    @extend_schema_field(BatchPreviewSerializer(allow_null=True))
    def get_preview(self, run) -> dict | None:
        return BatchPreviewSerializer(preview_of_run(run=run)).data if run.state == BatchState.DONE else None


class BatchPreviewView(EntityScopedMixin, APIView):
    """Who a batch would reach, who is left out and why, the text, segments and credits; nothing is
    written. Criteria choosing 2,000 clients or more are previewed in the background: 202 with the
    preview's run, to read again at its URL until its state is done."""

    required_rights = {"post": Right.MAXSMS_PROCESSING}
    parser_classes = [JSONParser]  # as BatchListView's send

    @extend_schema(request=BatchCriteriaSerializer, summary="Preview a message batch",
                   responses={200: BatchPreviewSerializer,
                              202: OpenApiResponse(BatchPreviewRunSerializer, description="A large preview, being made "
                                                   "in the background: GET /api/messaging/batches/previews/{id}/")})
    def post(self, request):
        body = BatchCriteriaSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        batch_type, criteria = body.criteria()
        preview = batch_preview_request(actor=request.user, entity=self.entity, batch_type=batch_type, criteria=criteria)
        if isinstance(preview, BatchPreviewRun):
            return Response(BatchPreviewRunSerializer(preview).data, status=status.HTTP_202_ACCEPTED)
        return Response(BatchPreviewSerializer(preview).data)


class BatchPreviewRunView(EntityScopedMixin, APIView):
    """A large preview's state and progress (prepared of selected) and, once made, the preview."""

    required_rights = {"get": Right.MAXSMS_PROCESSING}

    @extend_schema(responses={200: BatchPreviewRunSerializer}, summary="Status of a large batch preview")
    def get(self, request, batchpreviewrun_id: int):
        try:
            run = selectors.preview_run_get(entity=self.entity, run_id=batchpreviewrun_id)
        except BatchPreviewRun.DoesNotExist:
            raise Http404("No such preview in your entity.") from None
        return Response(BatchPreviewRunSerializer(run).data)


class BatchListView(EntityScopedMixin, ListAPIView):
    """The batches sent, newest first; POST sends one."""

    required_rights = {"get": Right.MAXSMS_PROCESSING, "post": Right.MAXSMS_PROCESSING}
    serializer_class = MessageBatchSerializer
    # JSON only: in a form a blank criterion ("client_status=", "due_from=") is "not given", so the
    # batch was sent to every client the other criteria chose (schemathesis: schema-violating
    # request accepted); a JSON "" is refused naming the field.
    parser_classes = [JSONParser]

    def get_queryset(self):
        return selectors.batch_list(entity=self.entity)

    @extend_schema(request=BatchSendSerializer, summary="Send a message batch",
                   responses={201: MessageBatchSerializer,
                              200: OpenApiResponse(MessageBatchSerializer, description="The key was used already: the "
                                                   "batch sent then, nothing more sent")})
    def post(self, request):
        body = BatchSendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = body.validated_data.pop("idempotency_key")
        batch_type, criteria = body.criteria()
        sent = batch_send(actor=request.user, entity=self.entity, batch_type=batch_type, criteria=criteria,
                          idempotency_key=f"api:{key}")
        return Response(MessageBatchSerializer(sent.batch).data,
                        status=status.HTTP_200_OK if sent.repeated else status.HTTP_201_CREATED)


class BatchDetailView(EntityScopedMixin, APIView):
    """A batch's state and counts; while it runs in the background, how far it is (prepared, queued)."""

    required_rights = {"get": Right.MAXSMS_PROCESSING}

    @extend_schema(responses={200: MessageBatchSerializer}, summary="Status of a message batch")
    def get(self, request, messagebatch_id: int):
        batch = batch_refresh_if_died(batch=get_object_or_404(selectors.batch_list(entity=self.entity), pk=messagebatch_id))
        data = MessageBatchSerializer(batch).data
        if batch.state == BatchState.RUNNING:
            data["queued"] = selectors.batch_written(batch=batch)
        return Response(data)


class BatchResumeView(EntityScopedMixin, APIView):
    """Resume a failed batch: the same batch runs again; clients it reached already are skipped
    (their outbox keys), so each client gets it once and pays once."""

    required_rights = {"post": Right.MAXSMS_PROCESSING}

    @extend_schema(request=None, responses={200: MessageBatchSerializer, 202: MessageBatchSerializer},
                   summary="Resume a failed message batch")
    def post(self, request, messagebatch_id: int):
        batch = get_object_or_404(selectors.batch_list(entity=self.entity), pk=messagebatch_id)
        batch = batch_resume(actor=request.user, entity=self.entity, batch_id=batch.pk)
        return Response(MessageBatchSerializer(batch).data,
                        status=status.HTTP_202_ACCEPTED if batch.background and not batch.finished else status.HTTP_200_OK)


urlpatterns = [
    path("messaging/batches/", BatchListView.as_view(), name="messaging-batches"),
    path("messaging/batches/preview/", BatchPreviewView.as_view(), name="messaging-batches-preview"),
    path("messaging/batches/previews/<int:batchpreviewrun_id>/", BatchPreviewRunView.as_view(),
         name="messaging-batch-preview-run"),
    path("messaging/batches/<int:messagebatch_id>/", BatchDetailView.as_view(), name="messaging-batch"),
    path("messaging/batches/<int:messagebatch_id>/resume/", BatchResumeView.as_view(), name="messaging-batch-resume"),
]
