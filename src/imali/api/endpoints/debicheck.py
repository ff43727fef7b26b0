"""DebiCheck mandates over the API: list and read, create for a loan, send to the bank once signed
(the signing itself is /api/signing/mandates/<document>/signing/...), ask the bank for the answer,
amend (signed and authenticated again), send an amendment, cancel. Every action needs "Allow access
to payment-stream web services"; imali.paystream.mandates decides, a ValidationError is a 400
naming the field."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from imali.api.base import EntityScopedMixin, query_int
from imali.api.openapi import too_many_requests
from imali.api.serializers.fields import (
    EntityRelatedField,
    MoneyField,
    RateField,
    StrictBooleanField,
    StrictIntegerField,
)
from imali.loans.models import Loan
from imali.paystream import mandates as services
from imali.paystream.models import (
    MAX_TRACKING_DAYS,
    AdjustmentCategory,
    AuthenticationType,
    DebiCheckMandate,
    DebitSequence,
    MandateAmendment,
    MandateFrequency,
    MandateValueType,
    StreamAccount,
)
from imali.paystream.services import ASK_MIN_SECONDS
from imali.tenancy.rights import Right

RIGHT = Right.PAYMENT_STREAM_WEB_SERVICES
BAD_INPUT = OpenApiResponse(description="Bad input, a rule refused (e.g. contract_reference_used, mandate_not_signed, "
                                        "not_amendable) or refused by the stream: each field at fault with its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks 'Allow access to payment-stream web services'.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")
ASKED_RECENTLY = too_many_requests("The bank was asked about this loan's mandates moments ago (code asked_recently): "
                                   "wait Retry-After seconds.")


class AmendmentSerializer(serializers.ModelSerializer):
    signing_document = StrictIntegerField(source="document_id", read_only=True,
                                                help_text="The signing module's mandate id: sign it under /api/signing/mandates/")

    class Meta:
        model = MandateAmendment
        fields = ["id", "number", "instalment_amount", "maximum_collection", "collection_day", "status", "signing_document",
                  "reference", "authenticate_by", "decided_at", "rejection_reason", "created_at"]
        read_only_fields = fields


class MandateSerializer(serializers.ModelSerializer):
    signing_document = StrictIntegerField(source="document_id", read_only=True,
                                                help_text="The signing module's mandate id: sign it under /api/signing/mandates/")
    amendments = AmendmentSerializer(many=True, read_only=True)

    class Meta:
        model = DebiCheckMandate
        fields = ["id", "loan", "client", "account", "contract_reference", "authentication", "value_type", "debit_sequence",
                  "instalment_amount", "maximum_collection", "frequency", "collection_day", "first_collection_date",
                  "date_adjustment", "adjustment_category", "adjustment_amount", "adjustment_rate", "tracking_days", "status",
                  "signing_document", "reference", "authenticate_by", "decided_at", "rejection_reason", "cancelled_at",
                  "created_at", "amendments"]
        read_only_fields = fields


class MandateWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all())
    account = EntityRelatedField(queryset=StreamAccount.objects.all(), help_text="A registered bank account of the loan's client")
    authentication = serializers.ChoiceField(choices=AuthenticationType.choices)
    value_type = serializers.ChoiceField(choices=MandateValueType.choices, required=False, default=MandateValueType.FIXED)
    debit_sequence = serializers.ChoiceField(choices=DebitSequence.choices, required=False, default=DebitSequence.RECURRING)
    instalment_amount = MoneyField(required=False, allow_null=True, help_text="Blank: the loan's instalment")
    maximum_collection = MoneyField(required=False, allow_null=True, help_text="At least the instalment, at most 1.5 times it; blank: 10% above the instalment")
    frequency = serializers.ChoiceField(choices=MandateFrequency.choices, required=False, default=MandateFrequency.MONTHLY)
    collection_day = StrictIntegerField(min_value=1, max_value=99, required=False, allow_null=True,
                                              help_text="Weekly 1–7, fortnightly 1–14, monthly 1–30 or 99 (last day)")
    first_collection_date = serializers.DateField()
    date_adjustment = StrictBooleanField(required=False, default=False)
    adjustment_category = serializers.ChoiceField(choices=AdjustmentCategory.choices, required=False,
                                                  default=AdjustmentCategory.NEVER)
    adjustment_amount = MoneyField(required=False, allow_null=True)
    adjustment_rate = RateField(places=3, required=False, allow_null=True, help_text="Percent")
    tracking_days = StrictIntegerField(min_value=0, max_value=MAX_TRACKING_DAYS, required=False, default=0)
    contract_reference = serializers.CharField(max_length=20, required=False, allow_blank=True,
                                               help_text="Blank: Imali makes one. Never reused, also after a cancel")


class AmendWriteSerializer(serializers.Serializer):
    instalment_amount = MoneyField(required=False, allow_null=True)
    maximum_collection = MoneyField(required=False, allow_null=True)
    collection_day = StrictIntegerField(min_value=1, max_value=99, required=False, allow_null=True)
    # Named so that a change of them is refused with a reason rather than silently dropped.
    frequency = serializers.CharField(required=False, allow_null=True, help_text="Cannot be amended: a new mandate")
    account = StrictIntegerField(required=False, allow_null=True, help_text="Cannot be amended: a new mandate")
    contract_reference = serializers.CharField(required=False, allow_null=True, help_text="Cannot be amended: a new mandate")


class CancelWriteSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


@extend_schema_view(
    list=extend_schema(summary="DebiCheck mandates, newest first", parameters=[OpenApiParameter("loan", int, description="One loan's")],
                       responses={200: MandateSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="A DebiCheck mandate with its amendments",
                           responses={200: MandateSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(summary="Create a DebiCheck mandate for a loan (the client signs it next)",
                         request=MandateWriteSerializer, responses={201: MandateSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class MandateViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = MandateSerializer
    lookup_url_kwarg = "debicheckmandate_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {a: RIGHT for a in ("list", "retrieve", "create", "send", "refresh", "amend", "send_amendment", "cancel")}

    def get_queryset(self):
        rows = DebiCheckMandate.objects.filter(entity=self.entity).prefetch_related("amendments").order_by("-id")
        loan = query_int(self.request, "loan")
        return rows.filter(loan_id=loan) if loan is not None else rows

    def _out(self, mandate: DebiCheckMandate, code: int = status.HTTP_200_OK) -> Response:
        return Response(MandateSerializer(self.get_queryset().get(pk=mandate.pk)).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = MandateWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        loan, account = data.pop("loan"), data.pop("account")
        mandate = services.mandate_create(entity=self.entity, actor=request.user, loan=loan, account=account, data=data)
        return self._out(mandate, status.HTTP_201_CREATED)

    @extend_schema(summary="Send the signed mandate to the bank: the client authenticates it (TT1/TT2/TT3)", request=None,
                   responses={200: MandateSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def send(self, request, *args, **kwargs):
        return self._out(services.mandate_submit(entity=self.entity, actor=request.user, mandate=self.get_object()))

    @extend_schema(summary="Ask the bank where the authentication stands (approved, rejected, timed out)", request=None,
                   description=f"Like the loan page's \"Ask the bank now\": at most once per {ASK_MIN_SECONDS} seconds "
                               "per loan (screen or API), audited; a mandate not waiting for the client asks nobody.",
                   parameters=[ASKED_RECENTLY[1]],
                   responses={200: MandateSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND, 429: ASKED_RECENTLY[0]})
    @action(detail=True, methods=["post"])
    def refresh(self, request, *args, **kwargs):
        return self._out(services.mandate_ask(entity=self.entity, actor=request.user, mandate=self.get_object()))

    @extend_schema(summary="Amend the instalment, maximum collection or collection day (signed and authenticated again)",
                   request=AmendWriteSerializer, responses={201: AmendmentSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def amend(self, request, *args, **kwargs):
        mandate = self.get_object()
        serializer = AmendWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = {k: v for k, v in serializer.validated_data.items() if v is not None}
        amendment = services.mandate_amend(entity=self.entity, actor=request.user, mandate=mandate, data=data)
        return Response(AmendmentSerializer(amendment).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Send the mandate's signed open amendment to the bank", request=None,
                   responses={200: AmendmentSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"], url_path="send-amendment")
    def send_amendment(self, request, *args, **kwargs):
        mandate = self.get_object()
        amendment = mandate.amendments.filter(status__in=services.OPEN_AMENDMENT).first()
        if amendment is None:
            from imali.paystream.errors import StreamError, stream_error

            raise stream_error("mandate", StreamError.MANDATE_STATE, "The mandate has no open amendment to send.")
        return Response(AmendmentSerializer(services.amendment_submit(entity=self.entity, actor=request.user,
                                                                      amendment=amendment)).data)

    @extend_schema(summary="Cancel the mandate at the bank and here (its contract reference is never used again)",
                   request=CancelWriteSerializer, responses={200: MandateSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        serializer = CancelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._out(services.mandate_cancel(entity=self.entity, actor=request.user, mandate=self.get_object(),
                                                 reason=serializer.validated_data["reason"]))


router = SimpleRouter()
router.register("payment-stream/mandates", MandateViewSet, basename="paystream-mandate")
urlpatterns = [*router.urls]
