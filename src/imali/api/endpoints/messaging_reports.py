"""The SMS Detail report over the API: the same filters and rows as the screen, paged JSON, or the
whole filtered selection as a streamed CSV file (`export=csv`, audited like the screen's export)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from imali.api.reports import ReportQuerySerializer, ReportView
from imali.api.serializers.fields import DayField, StrictIntegerField
from imali.messaging import reports
from imali.messaging.models import MessageType, OutboxStatus
from imali.tenancy.rights import Right


class SmsDetailQuerySerializer(ReportQuerySerializer):
    type = serializers.ChoiceField(choices=MessageType.choices, required=False, help_text="Message type")
    status = serializers.ChoiceField(choices=OutboxStatus.choices, required=False)
    date_from = DayField(required=False, help_text="First local day (the entity's time zone), inclusive")
    date_to = DayField(required=False, help_text="Last local day, inclusive")
    branch = StrictIntegerField(required=False, min_value=1, help_text="Branch id: the client's branch, or the "
                                      "home branch of the user a message went to")
    user = serializers.RegexField(r"^(system|[1-9][0-9]{0,17})$", required=False,
                                  help_text="Id of the user who sent it, or 'system' for automated messages")
    number = serializers.CharField(required=False, max_length=16, help_text="Part of the phone number")

    def filters(self) -> reports.SmsDetailFilters:
        data = self.validated_data
        user = data.get("user")
        return reports.SmsDetailFilters(
            message_type=data.get("type"), date_from=data.get("date_from"), date_to=data.get("date_to"),
            status=data.get("status"), branch_id=data.get("branch"),
            user=None if user is None else (user if user == reports.SYSTEM_USER else int(user)), number=data.get("number"))


class SmsDetailRowSerializer(serializers.Serializer):
    id = StrictIntegerField()
    created_at = serializers.DateTimeField()
    date = serializers.DateField(help_text="Local date")
    # OpenAPI's `format: time` is RFC 3339's full-time, with an offset; a local wall-clock time
    # has none, so it is described by a pattern instead.
    time = serializers.RegexField(r"^[0-2][0-9]:[0-5][0-9]:[0-5][0-9]$", help_text="Local time, HH:MM:SS")
    client_id = StrictIntegerField(allow_null=True)
    client_number = StrictIntegerField(allow_null=True)
    client = serializers.CharField()
    number = serializers.CharField()
    message_type = serializers.ChoiceField(choices=MessageType.choices)
    type_label = serializers.CharField()
    message = serializers.CharField()
    # A plain string: the same choice set under another serializer's "status" would make the
    # schema's enum names collide.
    status = serializers.CharField(help_text="One of: " + ", ".join(OutboxStatus.values))
    status_label = serializers.CharField()
    segments = StrictIntegerField()
    credits = StrictIntegerField()
    response = serializers.CharField(help_text="The gateway's refusal or failure reason, if any")
    user_id = StrictIntegerField(allow_null=True)
    user = serializers.CharField(help_text="Who sent it; 'System' for automated messages")
    branch = serializers.CharField()


class SmsDetailReportView(ReportView):
    required_rights = {"get": Right.REPORT_SMS_DETAIL}
    serializer_class = SmsDetailRowSerializer
    query_serializer_class = SmsDetailQuerySerializer
    report = "sms-detail"
    header = reports.SMS_DETAIL_HEADER
    text_columns = reports.SMS_DETAIL_TEXT_COLUMNS

    def listed(self, filters):
        return reports.sms_detail_list(entity=self.entity, filters=filters)

    def page_rows(self, page) -> list:
        return list(reports.sms_detail_rows(page, entity=self.entity))

    def snapshot(self, filters):
        return reports.sms_detail_snapshot(entity=self.entity, filters=filters)

    def export_rows(self, filters, snapshot):
        return reports.sms_detail_export_rows(entity=self.entity, filters=filters, snapshot=snapshot)

    @extend_schema(parameters=[SmsDetailQuerySerializer], summary="SMS Detail report",
                   responses={(200, "application/json"): SmsDetailRowSerializer(many=True),
                              (200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return self.report_response()


urlpatterns = [
    path("messaging/reports/sms-detail/", SmsDetailReportView.as_view(), name="messaging-report-sms-detail"),
]
