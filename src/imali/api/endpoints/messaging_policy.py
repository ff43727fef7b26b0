"""MAXSMS General Setup over the API: the per-entity switch of each SMS type.

GET lists every message type with its state; PATCH {"message_type", "enabled"} switches one type
(audited, the same service as the screen). The OTP is listed (always on) but has no switch here: the OTP setup
decides whether an OTP is sent."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin
from imali.messaging.models import MessageType
from imali.messaging.policy import (
    SWITCHABLE_TYPES,
    enabled_message_types,
    message_type_set_enabled,
    send_window_applies,
)
from imali.tenancy.rights import Right


class SmsTypeSerializer(serializers.Serializer):
    message_type = serializers.ChoiceField(choices=MessageType.choices)
    label = serializers.CharField()
    enabled = serializers.BooleanField()
    switchable = serializers.BooleanField(help_text="False for the OTP, which the OTP setup governs")
    direct_marketing = serializers.BooleanField(
        help_text="Sent only in the CPA Regulation 4 hours of the entity's time zone, with the sender's name and "
                  "'Reply STOP to opt out'")


class SmsTypeUpdateSerializer(serializers.Serializer):
    # A plain string: the switchable set is the single-SMS template set, and one choice set under
    # two enum names would muddle the schema. The service names an unknown or OTP type.
    message_type = serializers.CharField(max_length=20, help_text="One of: " + ", ".join(SWITCHABLE_TYPES))
    enabled = serializers.BooleanField()


def _row(message_type: str, enabled: set[str]) -> dict:
    return {"message_type": message_type, "label": MessageType(message_type).label, "enabled": message_type in enabled,
            "switchable": message_type in SWITCHABLE_TYPES,
            "direct_marketing": send_window_applies(message_type=message_type)}


class SmsTypeListView(EntityScopedMixin, APIView):
    """GET every type with its state; PATCH switches one type (a route per type would name no object)."""

    pagination_class = None  # one row per message type
    # The PATCH names the type and its state, both required (api.openapi: not a partial body).
    patch_takes_whole_body = True
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP, "patch": Right.MAXSMS_GENERAL_SETUP}

    @extend_schema(responses=SmsTypeSerializer(many=True), summary="The entity's SMS types and whether each is on")
    def get(self, request):
        enabled = enabled_message_types(entity=self.entity)
        return Response(SmsTypeSerializer([_row(t, enabled) for t in MessageType.values], many=True).data)

    @extend_schema(request=SmsTypeUpdateSerializer, responses=SmsTypeSerializer,
                   summary="Switch one SMS type on or off for the entity (audited)")
    def patch(self, request):
        body = SmsTypeUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message_type = body.validated_data["message_type"]
        message_type_set_enabled(actor=request.user, entity=self.entity, message_type=message_type,
                                 enabled=body.validated_data["enabled"])
        return Response(SmsTypeSerializer(_row(message_type, enabled_message_types(entity=self.entity))).data)


urlpatterns = [
    path("messaging/sms-types/", SmsTypeListView.as_view(), name="messaging-sms-types"),
]
