"""Client marketing over the API: run a data set from filters (on the Huey consumer), its status
(progress), its rows paged and sorted, its export (CSV or XLSX, streamed) and a send of a custom
message (preview first). The same services as the screens (imali.marketing); every call needs
"Processing: Client Marketing" in the caller's entity, and another entity's data set is a 404."""

from __future__ import annotations

from collections.abc import Mapping

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin, query_choice
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import StrictBooleanField, StrictIntegerField
from imali.clients.models import (
    ClientStatus,
    EconomicSector,
    EmployerClassification,
    PaymentFrequency,
)
from imali.loans.models import PaybackType
from imali.marketing import selectors
from imali.marketing.columns import KEYS
from imali.marketing.errors import MarketingError
from imali.marketing.filters import MONTHS, OVERDUES
from imali.marketing.models import CustomMessage, DataSet, DataSetRow, MarketingSend
from imali.marketing.sending import send_preview, send_start
from imali.marketing.services import dataset_export_record, dataset_start
from imali.messaging import reports
from imali.tenancy.rights import Right

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class DataSetFiltersSerializer(serializers.Serializer):
    """The filters of seed 002; every one optional, every one that is given must hold. The values are
    checked again by the same form as the screen's, so a bad one is a 400 naming it. A name that is
    not a filter is a 400 naming it too: dropped, a misspelt filter would run the data set over the
    whole book (and a send from it reach every client)."""

    branch = StrictIntegerField(required=False, min_value=1, help_text="Branch id")
    region = StrictIntegerField(required=False, min_value=1, help_text="Region id")
    created_by = StrictIntegerField(required=False, min_value=1, help_text="Id of the user who created the client")
    salesperson = StrictIntegerField(required=False, min_value=1, help_text="Salesperson's user id")
    number_from = StrictIntegerField(required=False, min_value=1, max_value=10**15, help_text="Client number from")
    number_to = StrictIntegerField(required=False, min_value=1, max_value=10**15, help_text="Client number to")
    client_status = serializers.ChoiceField(choices=ClientStatus.choices, required=False)
    payment_frequency = serializers.ChoiceField(choices=PaymentFrequency.choices, required=False)
    area = serializers.CharField(required=False, max_length=60, help_text="A client area of the entity")
    bank = serializers.CharField(required=False, max_length=60, help_text="A bank name of the entity's clients' accounts")
    bank_account_type = serializers.ChoiceField(choices=["payout", "payback"], required=False)
    created_from = serializers.DateField(required=False, help_text="Client created from (entity's local day)")
    created_to = serializers.DateField(required=False)
    payback_type = serializers.ChoiceField(choices=PaybackType.choices, required=False, help_text="Receipt (payback) type")
    overdues = serializers.ChoiceField(choices=[v for v, _ in OVERDUES], required=False)
    paid_from = serializers.DateField(required=False, help_text="Totally paid from (with paid_to)")
    paid_to = serializers.DateField(required=False)
    months_outstanding = serializers.ChoiceField(choices=[v for v, _ in MONTHS if v], required=False)
    calculate_settlement = StrictBooleanField(required=False)
    only_change_and_debt = StrictBooleanField(required=False)
    employer = StrictIntegerField(required=False, min_value=1)
    paypoint = StrictIntegerField(required=False, min_value=1)
    employer_classification = serializers.ChoiceField(choices=EmployerClassification.choices, required=False)
    economic_sector = serializers.ChoiceField(choices=EconomicSector.choices, required=False)

    def to_internal_value(self, data):
        unknown = sorted(str(k) for k in data if k not in self.fields) if isinstance(data, Mapping) else []
        errors = {name: [ErrorDetail("Not a filter of client marketing.", code=MarketingError.NOT_A_FILTER.value)]
                  for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if errors and isinstance(exc.detail, dict):
                exc.detail.update(errors)
            raise
        if errors:
            raise serializers.ValidationError(errors)
        return value


class DataSetSerializer(serializers.ModelSerializer):
    run_by = serializers.CharField(source="created_by.username", read_only=True)
    percent = StrictIntegerField(read_only=True)

    class Meta:
        model = DataSet
        fields = ["id", "filters", "as_of", "state", "total", "progress", "percent", "row_count", "duration_ms", "error",
                  "rerun_of", "run_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class DataSetRowSerializer(serializers.ModelSerializer):
    class Meta:
        model = DataSetRow
        fields = ["id", "seq", "client", *KEYS]
        read_only_fields = fields


class SendRequestSerializer(serializers.Serializer):
    message = StrictIntegerField(min_value=1, help_text="A custom message id (GET /api/marketing/messages/)")
    rows = serializers.ListField(child=StrictIntegerField(min_value=1), required=False, max_length=5000,
                                 help_text="Row ids to send to; empty or absent: every row")


class SendSerializer(SendRequestSerializer):
    idempotency_key = serializers.CharField(max_length=64, help_text="Any unique string; resending it sends nothing more")


class DroppedSerializer(serializers.Serializer):
    reason = serializers.CharField()
    label = serializers.CharField()
    count = StrictIntegerField()


class SendPreviewSerializer(serializers.Serializer):
    channel = serializers.CharField()
    text = serializers.CharField(help_text="The text as it goes out")
    selected = StrictIntegerField(help_text="Rows chosen")
    recipients = StrictIntegerField(help_text="Messages that would go")
    dropped = serializers.SerializerMethodField()
    sample = serializers.CharField(help_text="The first recipient's message ('' when nobody is reached)")
    credits_needed = StrictIntegerField()
    credits_left = StrictIntegerField()
    can_send = serializers.BooleanField()

    @extend_schema_field(DroppedSerializer(many=True))
    def get_dropped(self, preview) -> list[dict]:
        return [{"reason": r, "label": label, "count": n} for r, label, n in preview.dropped_rows]


class MarketingSendSerializer(serializers.ModelSerializer):
    sent_by = serializers.CharField(source="created_by.username", read_only=True)
    process_log = StrictIntegerField(source="process_id", read_only=True, allow_null=True)

    class Meta:
        model = MarketingSend
        fields = ["id", "dataset", "message", "channel", "state", "background", "selected", "queued", "dropped",
                  "dropped_reasons", "credits", "error", "sent_by", "process_log", "created_at", "finished_at"]
        read_only_fields = fields


class CustomMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomMessage
        fields = ["id", "channel", "name", "subject", "text", "is_active"]
        read_only_fields = fields


def _dataset(view, dataset_id: int) -> DataSet:
    return get_object_or_404(selectors.dataset_list(entity=view.entity), pk=dataset_id)


class DataSetListView(EntityScopedMixin, ListAPIView):
    """The data sets collected, newest first; POST runs one."""

    required_rights = {"get": Right.CLIENT_MARKETING, "post": Right.CLIENT_MARKETING}
    serializer_class = DataSetSerializer
    parser_classes = [JSONParser]  # the flags are JSON booleans: a form field's "yes" or "1" would be a guess

    def get_queryset(self):
        return selectors.dataset_list(entity=self.entity)

    @extend_schema(request=DataSetFiltersSerializer, responses={202: DataSetSerializer},
                   summary="Run a client-marketing data set (in the background)")
    def post(self, request):
        body = DataSetFiltersSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = dataset_start(actor=request.user, entity=self.entity, filters=dict(body.validated_data))
        return Response(DataSetSerializer(dataset).data, status=status.HTTP_202_ACCEPTED)


class DataSetDetailView(EntityScopedMixin, APIView):
    """A data set's state and progress (rows kept of the clients chosen)."""

    required_rights = {"get": Right.CLIENT_MARKETING}

    @extend_schema(responses={200: DataSetSerializer}, summary="Status of a client-marketing data set")
    def get(self, request, dataset_id: int):
        return Response(DataSetSerializer(_dataset(self, dataset_id)).data)


SORT_PARAMETERS = [
    OpenApiParameter("sort", str, enum=list(KEYS), required=False, description="The column to sort by (default: collection order)"),
    OpenApiParameter("dir", str, enum=["asc", "desc"], required=False),
]


class DataSetRowsView(EntityScopedMixin, ListAPIView):
    """The data set's rows, paged, sorted by any column."""

    required_rights = {"get": Right.CLIENT_MARKETING}
    serializer_class = DataSetRowSerializer

    def get_queryset(self):
        dataset = _dataset(self, self.kwargs["dataset_id"])
        sort = query_choice(self.request, "sort", KEYS) or ""
        descending = query_choice(self.request, "dir", ("asc", "desc")) == "desc"
        return selectors.dataset_row_page(dataset=dataset, sort=sort, descending=descending)

    @extend_schema(parameters=SORT_PARAMETERS, summary="Rows of a client-marketing data set")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DataSetExportView(EntityScopedMixin, APIView):
    """The data set as a CSV or XLSX file, streamed (rows read in chunks: memory stays bounded)."""

    required_rights = {"get": Right.CLIENT_MARKETING}

    @extend_schema(parameters=[OpenApiParameter("file_format", str, enum=["csv", "xlsx"], required=False,
                                                description="csv (default) or xlsx")],
                   responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, XLSX_TYPE): OpenApiTypes.BINARY},
                   summary="Export a client-marketing data set")
    def get(self, request, dataset_id: int):
        from imali.marketing.export import dataset_csv, dataset_xlsx

        dataset = _dataset(self, dataset_id)
        fmt = query_choice(request, "file_format", ("csv", "xlsx")) or "csv"
        if dataset.state != "done":
            raise exceptions.ValidationError({"dataset": ["The data set has not finished collecting."]})
        if fmt == "csv":
            response = StreamingHttpResponse(dataset_csv(dataset, byte_order_mark=False),
                                             content_type="text/csv; charset=utf-8")
        else:
            handle, size = dataset_xlsx(dataset)
            response = StreamingHttpResponse(reports.file_stream(handle), content_type=XLSX_TYPE)
            response["Content-Length"] = str(size)
        dataset_export_record(actor=request.user, entity=self.entity, dataset=dataset, fmt=fmt, ip_address=self.ip_address)
        response["Content-Disposition"] = f'attachment; filename="client-marketing-{dataset.pk}.{fmt}"'
        return response


class SendPreviewView(EntityScopedMixin, APIView):
    """Who a send would reach, who is left out and why, the text and the credits; nothing written."""

    required_rights = {"post": Right.CLIENT_MARKETING}

    @extend_schema(request=SendRequestSerializer, responses={200: SendPreviewSerializer},
                   summary="Preview a send from a client-marketing data set")
    def post(self, request, dataset_id: int):
        dataset = _dataset(self, dataset_id)
        body = SendRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preview = send_preview(actor=request.user, entity=self.entity, dataset_id=dataset.pk,
                               message_id=body.validated_data["message"], row_ids=body.validated_data.get("rows") or ())
        return Response(SendPreviewSerializer(preview).data)


class SendView(EntityScopedMixin, APIView):
    """Send a custom message to the data set's rows (all, or those listed); once per key."""

    required_rights = {"post": Right.CLIENT_MARKETING}

    @extend_schema(request=SendSerializer, summary="Send from a client-marketing data set",
                   responses={201: MarketingSendSerializer,
                              200: OpenApiResponse(MarketingSendSerializer, description="The key was used already: "
                                                   "the send made then, nothing more sent")})
    def post(self, request, dataset_id: int):
        dataset = _dataset(self, dataset_id)
        body = SendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        send, repeated = send_start(actor=request.user, entity=self.entity, dataset_id=dataset.pk,
                                    message_id=body.validated_data["message"], row_ids=body.validated_data.get("rows") or (),
                                    idempotency_key=f"api:{body.validated_data['idempotency_key']}")
        return Response(MarketingSendSerializer(send).data, status=status.HTTP_200_OK if repeated else status.HTTP_201_CREATED)


class CustomMessageListView(EntityScopedMixin, ListAPIView):
    """The entity's custom messages (SMS and email) to send from a data set."""

    required_rights = {"get": Right.CLIENT_MARKETING}
    serializer_class = CustomMessageSerializer

    def get_queryset(self):
        return selectors.custom_message_list(entity=self.entity)


urlpatterns = [
    path("marketing/datasets/", DataSetListView.as_view(), name="marketing-datasets"),
    path("marketing/datasets/<int:dataset_id>/", DataSetDetailView.as_view(), name="marketing-dataset"),
    path("marketing/datasets/<int:dataset_id>/rows/", DataSetRowsView.as_view(), name="marketing-dataset-rows"),
    path("marketing/datasets/<int:dataset_id>/export/", DataSetExportView.as_view(), name="marketing-dataset-export"),
    path("marketing/datasets/<int:dataset_id>/send/preview/", SendPreviewView.as_view(), name="marketing-dataset-send-preview"),
    path("marketing/datasets/<int:dataset_id>/send/", SendView.as_view(), name="marketing-dataset-send"),
    path("marketing/messages/", CustomMessageListView.as_view(), name="marketing-messages"),
]
