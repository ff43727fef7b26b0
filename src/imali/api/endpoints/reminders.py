"""Automatic SMS and MIS SMS over the API: the automatic batches' setup (general, and arrears under
its own right), the MIS SMS setup with each stream's recipients, the day runs, and the MIS Detail
report. Thin: every rule is in imali.reminders.services; a refused change is a 400 naming the field."""

from __future__ import annotations

import datetime as dt
import re

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import (
    DayField,
    MoneyField,
    StrictBooleanField,
    StrictIntegerField,
)
from imali.messaging.models import OutboxStatus
from imali.reminders import selectors, services
from imali.reminders.models import DailyRun, MisRecipient, MisStream
from imali.tenancy.rights import Right

# Ids are 64-bit: a larger number is refused as input, not passed to the database to overflow.
MAX_ID = 2**63 - 1
BAD_INPUT = OpenApiResponse(description="Bad input: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")


TIME_PATTERN = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@extend_schema_field({"type": "string", "pattern": TIME_PATTERN.pattern, "example": "08:00"})
class LocalTimeField(serializers.Field):
    """A local wall-clock time as HH:MM (the entity's zone). OpenAPI's `format: time` is RFC 3339's
    full-time, with seconds and an offset; a local time has neither, so it is a pattern."""

    default_error_messages = {"invalid": "Give a local time as HH:MM, 00:00 to 23:59."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not TIME_PATTERN.fullmatch(data):
            self.fail("invalid")
        return dt.time(int(data[:2]), int(data[3:]))

    def to_representation(self, value):
        return value.strftime("%H:%M")


class AutomaticGeneralSerializer(serializers.Serializer):
    run_at = LocalTimeField(required=False, help_text="Local time (the entity's zone), HH:MM")
    due_enabled = StrictBooleanField(required=False, help_text="Payment-due reminders on")
    due_days_before = StrictIntegerField(required=False, min_value=1, max_value=30)
    received_enabled = StrictBooleanField(required=False, help_text="Payment received messages on")
    birthday_enabled = StrictBooleanField(required=False, help_text="Birthday greetings on")


class AutomaticArrearsSerializer(serializers.Serializer):
    arrears_enabled = StrictBooleanField(required=False)
    arrears_minimum = MoneyField(required=False, help_text="Clients owing less in arrears get no message")
    arrears_repeat_days = StrictIntegerField(required=False, min_value=1, max_value=90,
                                                   help_text="Remind a client still in arrears again after this many days")


class MisSetupSerializer(serializers.Serializer):
    run_at = LocalTimeField(required=False, help_text="Local time (the entity's zone), HH:MM")
    management_enabled = StrictBooleanField(required=False)
    cash_flow_enabled = StrictBooleanField(required=False)
    branch_enabled = StrictBooleanField(required=False)
    monthly_enabled = StrictBooleanField(required=False)
    management_recipients = serializers.ListField(child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False,
                                                  max_length=200, help_text="User ids")
    cash_flow_recipients = serializers.ListField(child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False,
                                                 max_length=200, help_text="User ids")
    branch_recipients = serializers.ListField(child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False,
                                              max_length=200, help_text="User ids; each gets their home branch's figures")
    monthly_recipients = serializers.ListField(child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False,
                                               max_length=200, help_text="User ids")


class DailyRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = DailyRun
        fields = ["id", "kind", "business_date", "attempts", "started_at", "finished_at", "results", "error"]


class MisDetailQuerySerializer(serializers.Serializer):
    date_from = DayField(required=False, help_text="First local day, inclusive")
    date_to = DayField(required=False, help_text="Last local day, inclusive")
    stream = serializers.ChoiceField(choices=MisStream.choices, required=False)
    status = serializers.ChoiceField(choices=OutboxStatus.choices, required=False)
    user = StrictIntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="Recipient user id")

    def to_internal_value(self, data):
        # DRF reads `?stream=` as "not given"; a filter, when given, is a value, so blank is refused.
        blank = {name: ["This filter may not be blank."] for name in self.fields if data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_to"] < attrs["date_from"]:
            raise serializers.ValidationError({"date_to": ["The end date is before the start date."]})
        return attrs

    def filters(self) -> selectors.MisDetailFilters:
        d = self.validated_data
        return selectors.MisDetailFilters(date_from=d.get("date_from"), date_to=d.get("date_to"), stream=d.get("stream"),
                                          status=d.get("status"), user_id=d.get("user"))


class MisDetailRowSerializer(serializers.Serializer):
    id = StrictIntegerField()
    created_at = serializers.DateTimeField()
    stream = serializers.CharField()
    user_id = StrictIntegerField(allow_null=True)
    user = serializers.CharField()
    number = serializers.CharField()
    text = serializers.CharField()
    status = serializers.CharField(help_text="One of: " + ", ".join(OutboxStatus.values))
    segments = StrictIntegerField()
    credits = StrictIntegerField()


def _valid(request, serializer_class) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _automatic(setup, fields) -> dict:
    data = {f: getattr(setup, f) for f in fields}
    return data


class AutomaticGeneralView(EntityScopedMixin, APIView):
    parser_classes = [JSONParser]
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP, "put": Right.MAXSMS_GENERAL_SETUP}

    @extend_schema(summary="Read the automatic SMS setup", responses={200: AutomaticGeneralSerializer, 403: NO_RIGHT})
    def get(self, request):
        setup = selectors.automatic_setup_of(entity=self.entity)
        return Response(AutomaticGeneralSerializer(_automatic(setup, services.GENERAL_FIELDS)).data)

    @extend_schema(summary="Change the automatic SMS setup",
                   description="Send time, payment-due reminders (days before), payment received, birthdays. "
                               "Only the fields given change. Audited. Needs MAXSMS General Setup.",
                   request=AutomaticGeneralSerializer, responses={200: AutomaticGeneralSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def put(self, request):
        setup = services.automatic_setup_update(actor=request.user, entity=self.entity,
                                                data=_valid(request, AutomaticGeneralSerializer))
        return Response(AutomaticGeneralSerializer(_automatic(setup, services.GENERAL_FIELDS)).data)


class AutomaticArrearsView(EntityScopedMixin, APIView):
    parser_classes = [JSONParser]
    required_rights = {"get": Right.MAXSMS_ARREARS_SETUP, "put": Right.MAXSMS_ARREARS_SETUP}

    @extend_schema(summary="Read the automatic arrears SMS setup", responses={200: AutomaticArrearsSerializer, 403: NO_RIGHT})
    def get(self, request):
        setup = selectors.automatic_setup_of(entity=self.entity)
        return Response(AutomaticArrearsSerializer(_automatic(setup, services.ARREARS_FIELDS)).data)

    @extend_schema(summary="Change the automatic arrears SMS setup",
                   description="Arrears messages on or off, the minimum arrears amount and the repeat interval. "
                               "Audited. Needs MAXSMS Payment Arrears Setup.",
                   request=AutomaticArrearsSerializer, responses={200: AutomaticArrearsSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def put(self, request):
        setup = services.automatic_setup_update(actor=request.user, entity=self.entity,
                                                data=_valid(request, AutomaticArrearsSerializer))
        return Response(AutomaticArrearsSerializer(_automatic(setup, services.ARREARS_FIELDS)).data)


def _mis(entity) -> dict:
    setup = selectors.mis_setup_of(entity=entity)
    data: dict = {"run_at": setup.run_at}
    for stream in MisStream.values:
        data[f"{stream}_enabled"] = setup.enabled(stream)
        data[f"{stream}_recipients"] = []
    for stream, user_id in MisRecipient.objects.filter(entity=entity).values_list("stream", "user_id"):
        data[f"{stream}_recipients"].append(user_id)
    return data


class MisSetupView(EntityScopedMixin, APIView):
    parser_classes = [JSONParser]
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP, "put": Right.MAXSMS_GENERAL_SETUP}

    @extend_schema(summary="Read the MIS SMS setup", responses={200: MisSetupSerializer, 403: NO_RIGHT})
    def get(self, request):
        return Response(MisSetupSerializer(_mis(self.entity)).data)

    @extend_schema(summary="Change the MIS SMS setup",
                   description="Send time, each stream on or off, and each stream's recipients (active users of the "
                               "entity with a cellphone). A recipient list given replaces the stream's list. Audited. "
                               "Needs MAXSMS General Setup.",
                   request=MisSetupSerializer, responses={200: MisSetupSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def put(self, request):
        data = _valid(request, MisSetupSerializer)
        recipients = {s: data.pop(f"{s}_recipients") for s in MisStream.values if f"{s}_recipients" in data}
        services.mis_setup_update(actor=request.user, entity=self.entity, data=data, recipients=recipients)
        return Response(MisSetupSerializer(_mis(self.entity)).data)


class DailyRunListView(EntityScopedMixin, ListAPIView):
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP}
    serializer_class = DailyRunSerializer

    def get_queryset(self):
        return DailyRun.objects.filter(entity=self.entity).order_by("-business_date", "kind")

    @extend_schema(summary="The automatic and MIS SMS runs, one per day and kind, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MisDetailReportView(EntityScopedMixin, ListAPIView):
    required_rights = {"get": Right.REPORT_MIS_DETAIL}
    serializer_class = MisDetailRowSerializer

    def get_queryset(self):
        query = MisDetailQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.mis_detail_list(entity=self.entity, filters=query.filters())

    @extend_schema(parameters=[MisDetailQuerySerializer], summary="MIS Detail report: the MIS SMS sent")
    def get(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        rows = [{"id": m.id, "created_at": m.created_at, "stream": selectors.stream_of_key(m.idempotency_key),
                 "user_id": m.user_id, "user": str(m.user) if m.user_id else "", "number": m.number, "text": m.text,
                 "status": m.status, "segments": m.segments, "credits": m.credits} for m in page]
        return self.get_paginated_response(MisDetailRowSerializer(rows, many=True).data)


urlpatterns = [
    path("reminders/automatic/", AutomaticGeneralView.as_view(), name="reminders-automatic"),
    path("reminders/automatic/arrears/", AutomaticArrearsView.as_view(), name="reminders-automatic-arrears"),
    path("reminders/mis/", MisSetupView.as_view(), name="reminders-mis"),
    path("reminders/runs/", DailyRunListView.as_view(), name="reminders-runs"),
    path("reminders/reports/mis-detail/", MisDetailReportView.as_view(), name="reminders-report-mis-detail"),
]
