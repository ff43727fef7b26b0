"""SMS replies over the API: run "Get SMS Responses", the Reply Detail report (paged JSON or the
whole filtered selection as streamed CSV, audited), and the reply-notification setup."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin
from imali.api.reports import ReportQuerySerializer, ReportView
from imali.api.serializers.fields import DayField, EntityRelatedField, StrictIntegerField
from imali.messaging import reply_reports
from imali.messaging.models import MessageType
from imali.messaging.replies import ON_DEMAND, replies_collect, reply_notify_list, reply_notify_set
from imali.tenancy.models import User
from imali.tenancy.rights import Right

YES_NO = [(reply_reports.YES, "Yes"), (reply_reports.NO, "No")]


class ReplyRunSerializer(serializers.Serializer):
    process_id = StrictIntegerField(allow_null=True, help_text="The process-log entry of the run")
    collected = StrictIntegerField(help_text="New replies taken by this run")
    matched_clients = StrictIntegerField()
    matched_messages = StrictIntegerField(help_text="Replies matched to the SMS they answer")
    stops = StrictIntegerField()
    fetched = StrictIntegerField(help_text="Messages fetched from aggregators that list them")
    fetched_from = serializers.ListField(child=serializers.CharField())
    notified_in_app = StrictIntegerField()
    notified_by_email = StrictIntegerField()
    errors = serializers.ListField(child=serializers.CharField())


class RepliesCollectView(EntityScopedMixin, APIView):
    required_rights = {"post": Right.MAXSMS_PROCESSING}

    @extend_schema(request=None, responses={200: ReplyRunSerializer},
                   summary="Get SMS Responses: fetch and collect the entity's new replies now")
    def post(self, request):
        r = replies_collect(entity=self.entity, actor=request.user, trigger=ON_DEMAND)
        return Response(ReplyRunSerializer({
            "process_id": r.process.pk if r.process else None, "collected": r.collected,
            "matched_clients": r.matched_clients, "matched_messages": r.matched_messages, "stops": r.stops,
            "fetched": r.pull.fetched if r.pull else 0, "fetched_from": r.pull.gateways if r.pull else [],
            "notified_in_app": r.notified_in_app, "notified_by_email": r.notified_by_email, "errors": r.errors}).data)


class ReplyDetailQuerySerializer(ReportQuerySerializer):
    date_from = DayField(required=False, help_text="First local day (the entity's time zone), inclusive")
    date_to = DayField(required=False, help_text="Last local day, inclusive")
    number = serializers.CharField(required=False, max_length=16, help_text="Part of the phone number")
    client_matched = serializers.ChoiceField(choices=YES_NO, required=False, help_text="Whether the client is known")
    stop = serializers.ChoiceField(choices=YES_NO, required=False, help_text="STOP replies only (yes) or none (no)")
    answered_type = serializers.ChoiceField(choices=MessageType.choices, required=False,
                                            help_text="Type of the SMS the reply answers")
    collected = serializers.ChoiceField(choices=YES_NO, required=False,
                                        help_text="yes: taken by a replies run; no: new since the last run")

    def filters(self) -> reply_reports.ReplyDetailFilters:
        d = self.validated_data
        return reply_reports.ReplyDetailFilters(
            date_from=d.get("date_from"), date_to=d.get("date_to"), number=d.get("number"),
            client_matched=d.get("client_matched"), stop=d.get("stop"), answered_type=d.get("answered_type"),
            collected=d.get("collected"))


class ReplyDetailRowSerializer(serializers.Serializer):
    id = StrictIntegerField()
    received_at = serializers.DateTimeField()
    date = serializers.DateField(help_text="Local date")
    time = serializers.RegexField(r"^[0-2][0-9]:[0-5][0-9]:[0-5][0-9]$", help_text="Local time, HH:MM:SS")
    number = serializers.CharField()
    client_id = StrictIntegerField(allow_null=True)
    client_number = StrictIntegerField(allow_null=True)
    client = serializers.CharField()
    reply = serializers.CharField()
    stop = serializers.BooleanField()
    answered_id = StrictIntegerField(allow_null=True, help_text="The SMS the reply answers")
    answered_type = serializers.CharField(help_text="Its message type (empty when none was matched)")
    answered_type_label = serializers.CharField()
    answered_text = serializers.CharField()
    answered_at = serializers.CharField(help_text="Local 'YYYY-MM-DD HH:MM' it was queued, empty when none")
    collected = serializers.CharField(help_text="Local 'YYYY-MM-DD HH:MM' a replies run took it, or 'New'")
    gateway = serializers.CharField()


class ReplyDetailReportView(ReportView):
    required_rights = {"get": Right.REPORT_REPLY_DETAIL}
    serializer_class = ReplyDetailRowSerializer
    query_serializer_class = ReplyDetailQuerySerializer
    report = "reply-detail"
    header = reply_reports.REPLY_DETAIL_HEADER
    text_columns = reply_reports.REPLY_DETAIL_TEXT_COLUMNS

    def listed(self, filters):
        return reply_reports.reply_detail_list(entity=self.entity, filters=filters)

    def page_rows(self, page) -> list:
        return list(reply_reports.reply_detail_rows(page, entity=self.entity))

    def snapshot(self, filters):
        return reply_reports.reply_detail_snapshot(entity=self.entity, filters=filters)

    def export_rows(self, filters, snapshot):
        return reply_reports.reply_detail_export_rows(entity=self.entity, filters=filters, snapshot=snapshot)

    @extend_schema(parameters=[ReplyDetailQuerySerializer], summary="Reply Detail report",
                   responses={(200, "application/json"): ReplyDetailRowSerializer(many=True),
                              (200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return self.report_response()


class ReplyNotifySerializer(serializers.Serializer):
    user = EntityRelatedField(queryset=User.objects.all(), help_text="A user of your entity")
    user_name = serializers.CharField(read_only=True)
    in_app = serializers.BooleanField()
    by_email = serializers.BooleanField(help_text="Needs the user's email address; one email credit per run")


class ReplyNotifyView(EntityScopedMixin, APIView):
    """Who is told of new replies. POST names a user (both switches off removes them)."""

    pagination_class = None
    required_rights = {"get": Right.MAXSMS_REPLIES_SETUP, "post": Right.MAXSMS_REPLIES_SETUP}

    def _rows(self):
        return [{"user": r.user, "user_name": str(r.user), "in_app": r.in_app, "by_email": r.by_email}
                for r in reply_notify_list(entity=self.entity)]

    @extend_schema(responses=ReplyNotifySerializer(many=True), summary="The reply-notification setup")
    def get(self, request):
        return Response(ReplyNotifySerializer(self._rows(), many=True).data)

    @extend_schema(request=ReplyNotifySerializer, responses={200: ReplyNotifySerializer(many=True)},
                   summary="Name a user to be told of new replies, or remove them (both off); audited")
    def post(self, request):
        body = ReplyNotifySerializer(data=request.data, context={"view": self})
        body.is_valid(raise_exception=True)
        d = body.validated_data
        reply_notify_set(actor=request.user, entity=self.entity, user=d["user"], by_email=d["by_email"], in_app=d["in_app"])
        return Response(ReplyNotifySerializer(self._rows(), many=True).data, status=status.HTTP_200_OK)


urlpatterns = [
    path("messaging/replies/collect/", RepliesCollectView.as_view(), name="messaging-replies-collect"),
    path("messaging/replies/notify/", ReplyNotifyView.as_view(), name="messaging-replies-notify"),
    path("messaging/reports/reply-detail/", ReplyDetailReportView.as_view(), name="messaging-report-reply-detail"),
]
