"""Messaging over the API: credit usage, the SMS detail list, single SMS, templates.

Writes go through imali.messaging.services: one transaction, credits debited with the message,
the idempotency key making a retried call harmless.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin
from imali.api.serializers.fields import StrictIntegerField
from imali.clients.models import Client
from imali.messaging.credits import credit_usage
from imali.messaging.models import Channel, MessageType, OutboxMessage, OutboxStatus
from imali.messaging.selectors import client_sms_history, outbox_list, sms_history_rows
from imali.messaging.services import (
    SINGLE_SMS_MAX_LENGTH,
    SINGLE_SMS_TEMPLATE_TYPES,
    single_sms_preview,
    single_sms_send,
    template_text,
)
from imali.tenancy.rights import Right


class CreditUsageSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices)
    balance = StrictIntegerField()
    used_this_month = StrictIntegerField()
    monthly_limit = StrictIntegerField(allow_null=True)
    low_warning_amount = StrictIntegerField()


class OutboxMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboxMessage
        fields = ["id", "client", "number", "message_type", "text", "segments", "credits", "priority", "status",
                  "provider_message_id", "attempts", "error", "created_at", "scheduled_for", "submitted_at", "finished_at"]
        read_only_fields = fields


class SingleSmsPreviewRequestSerializer(serializers.Serializer):
    client_id = StrictIntegerField()
    template = serializers.ChoiceField(choices=[(t, MessageType(t).label) for t in SINGLE_SMS_TEMPLATE_TYPES], required=False,
                                       allow_blank=True, help_text="A message type whose template is merged for the client; "
                                                                   "give this or `text`, not both.")
    text = serializers.CharField(max_length=SINGLE_SMS_MAX_LENGTH, required=False, allow_blank=True,
                                 help_text="Free text; give this or `template`, not both.")


class SingleSmsSerializer(SingleSmsPreviewRequestSerializer):
    idempotency_key = serializers.CharField(max_length=100, help_text="Any unique string; resending it sends nothing more.")


class SingleSmsPreviewSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The final text, merged for the client")
    number = serializers.CharField()
    segments = StrictIntegerField()
    encoding = serializers.ChoiceField(choices=["gsm7", "ucs2"])
    ucs2_characters = serializers.ListField(child=serializers.CharField(), help_text="The characters that forced UCS-2")
    credits = StrictIntegerField(help_text="SMS credits the send will cost")
    balance = StrictIntegerField(help_text="SMS credits left now")


class SmsHistorySerializer(serializers.Serializer):
    """One line of a client's SMS history: the columns of the client screen."""

    id = StrictIntegerField()
    date = serializers.CharField(help_text="YYYY-MM-DD in the entity's time zone")
    time = serializers.CharField(help_text="HH:MM:SS in the entity's time zone")
    type = serializers.CharField()
    message = serializers.CharField()
    status = serializers.ChoiceField(choices=["Scheduled", "Queued", "Sent", "Delivered", "Failed"],
                                     help_text="Scheduled: direct marketing waiting for the allowed hours")
    response = serializers.CharField(help_text="The provider's answer or the error")
    user = serializers.CharField(help_text='Who sent it; "System" for automated messages')


class TemplateSerializer(serializers.Serializer):
    message_type = serializers.ChoiceField(choices=MessageType.choices)
    text = serializers.CharField()


class CreditUsageView(EntityScopedMixin, APIView):
    pagination_class = None  # one row per channel: a plain list, and the schema says so
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP}

    @extend_schema(responses=CreditUsageSerializer(many=True), summary="Credits left and used, per channel")
    def get(self, request):
        data = [{"channel": c, **credit_usage(entity=self.entity, channel=c)} for c in Channel.values]
        return Response(CreditUsageSerializer(data, many=True).data)


class OutboxListView(EntityScopedMixin, ListAPIView):
    required_rights = {"get": Right.REPORT_SMS_DETAIL, "post": Right.SEND_SINGLE_SMS}
    serializer_class = OutboxMessageSerializer

    def get_queryset(self):
        status_filter = self.request.query_params.get("status")
        return outbox_list(entity=self.entity, status=status_filter if status_filter in OutboxStatus.values else None)

    @extend_schema(request=SingleSmsSerializer, responses={201: OutboxMessageSerializer}, summary="Send one SMS to a client")
    def post(self, request):
        body = SingleSmsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        client = get_object_or_404(Client, pk=body.validated_data["client_id"], entity=self.entity)
        message = single_sms_send(actor=request.user, entity=self.entity, client=client,
                                  template=body.validated_data.get("template", ""), text=body.validated_data.get("text", ""),
                                  idempotency_key=f"api:{body.validated_data['idempotency_key']}")
        return Response(OutboxMessageSerializer(message).data, status=status.HTTP_201_CREATED)


class SingleSmsPreviewView(EntityScopedMixin, APIView):
    """What a single SMS would be and cost, with the checks of the send; nothing is written."""

    required_rights = {"post": Right.SEND_SINGLE_SMS}

    @extend_schema(request=SingleSmsPreviewRequestSerializer, responses=SingleSmsPreviewSerializer,
                   summary="Preview one SMS to a client: final text, segments, encoding and credits")
    def post(self, request):
        body = SingleSmsPreviewRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        client = get_object_or_404(Client, pk=body.validated_data["client_id"], entity=self.entity)
        preview = single_sms_preview(actor=request.user, entity=self.entity, client=client,
                                     template=body.validated_data.get("template", ""), text=body.validated_data.get("text", ""))
        return Response(SingleSmsPreviewSerializer(preview).data)


class ClientSmsHistoryView(EntityScopedMixin, ListAPIView):
    """A client's SMS history, newest first, with the columns of the client screen."""

    required_rights = {"get": Right.VIEW_CLIENTS}
    serializer_class = SmsHistorySerializer

    def get_queryset(self):
        client = get_object_or_404(Client, pk=self.kwargs["client_id"], entity=self.entity)
        return client_sms_history(entity=self.entity, client_id=client.pk)

    @extend_schema(summary="A client's SMS history (Date, Time, Type, Message, Status, Response, User)")
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(SmsHistorySerializer(sms_history_rows(entity=self.entity, messages=page), many=True).data)


class TemplateListView(EntityScopedMixin, APIView):
    pagination_class = None  # one row per message type: a plain list, and the schema says so
    required_rights = {"get": Right.MAXSMS_MESSAGE_SETUP}

    @extend_schema(responses=TemplateSerializer(many=True), summary="The SMS text of each message type")
    def get(self, request):
        data = [{"message_type": t, "text": template_text(entity=self.entity, message_type=t)} for t in MessageType.values]
        return Response(TemplateSerializer(data, many=True).data)


urlpatterns = [
    path("messaging/credits/", CreditUsageView.as_view(), name="messaging-credits"),
    path("messaging/sms/", OutboxListView.as_view(), name="messaging-sms"),
    path("messaging/sms/preview/", SingleSmsPreviewView.as_view(), name="messaging-sms-preview"),
    path("messaging/clients/<int:client_id>/sms/", ClientSmsHistoryView.as_view(), name="messaging-client-sms"),
    path("messaging/templates/", TemplateListView.as_view(), name="messaging-templates"),
]
