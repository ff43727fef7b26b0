"""Mobile money of the caller's entity: provider setups (read; secrets never returned), payments
in and the suspense queue (allocate), MoMo requests to pay, and mobile disbursements (mark, send,
approve, check, cancel). The providers' own callbacks are in mobilemoney_callbacks (outside the
schema: providers call them, not our users). Thin: imali.mobilemoney's services decide; a
service's ValidationError becomes a 400 naming the field."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from imali.api.base import EntityScopedMixin, query_choice
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import EntityRelatedField, MoneyField, StrictIntegerField
from imali.loans.models import Loan
from imali.mobilemoney import collections, disbursements, selectors, services
from imali.mobilemoney.models import (
    CollectionRequest,
    Disbursement,
    DisbursementBatch,
    ProviderSetup,
    ProviderTransaction,
    StatementImport,
    TransactionStatus,
)
from imali.mobilemoney.statement import COLUMN_LABELS, DEFAULT_COLUMNS, MAX_FILE_BYTES
from imali.tenancy.rights import Right

BAD_INPUT = OpenApiResponse(description="Bad input: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")
PREVIEW_LINES = 500


class ProviderSetupSerializer(serializers.ModelSerializer):
    secrets_stored = serializers.SerializerMethodField(help_text="Which secrets are stored (their values are never returned)")

    class Meta:
        model = ProviderSetup
        fields = ["id", "provider", "is_active", "base_url", "short_code", "target_environment", "currency", "consumer_key",
                  "initiator_name", "callback_base_url", "registered_at", "statement_columns", "secrets_stored", "created_at"]
        read_only_fields = fields

    def get_secrets_stored(self, obj) -> list[str]:
        return [name for name in ProviderSetup.SECRET_FIELDS if getattr(obj, name)]


class ProviderTransactionSerializer(serializers.ModelSerializer):
    amount = MoneyField(read_only=True)

    class Meta:
        model = ProviderTransaction
        fields = ["id", "setup", "provider_transaction_id", "source", "status", "amount", "msisdn", "payer_name",
                  "account_reference", "transacted_at", "loan", "receipt", "suspense_reason", "allocated_by", "allocated_at",
                  "created_at"]
        read_only_fields = fields


class AllocateSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all(), help_text="The loan to post the payment to")


class StatementImportSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatementImport
        fields = ["id", "setup", "file_name", "file_sha256", "columns", "lines", "state", "progress", "imported_by",
                  "imported_at", "confirmed_by", "confirmed_at", "finished_at", "failure", "posted", "suspense",
                  "already_recorded", "invalid", "skipped"]
        read_only_fields = fields


class StatementLineSerializer(serializers.Serializer):
    line = StrictIntegerField(source="number", help_text="The line number in the file, as a spreadsheet shows it")
    transaction_id = serializers.CharField()
    amount = MoneyField(allow_null=True)
    account_reference = serializers.CharField()
    kind = serializers.ChoiceField(choices=["matched", "unmatched", "recorded", "invalid", "skipped"])
    note = serializers.CharField()
    loan = StrictIntegerField(source="loan_id", allow_null=True)


class StatementPreviewSerializer(serializers.Serializer):
    statement = StatementImportSerializer()
    counts = serializers.DictField(child=StrictIntegerField(),
                                   help_text="Lines by what they would become: matched, unmatched, recorded, invalid, skipped")
    lines = StatementLineSerializer(many=True, help_text=f"The first {PREVIEW_LINES} lines that are not matched")


def _statement_upload_serializer():
    fields = {
        "setup": EntityRelatedField(queryset=ProviderSetup.objects.all(), help_text="The provider account the statement is of"),
        "file": serializers.FileField(allow_empty_file=False, max_length=200,
                                      help_text=f"CSV or XLSX, at most {MAX_FILE_BYTES // (1024 * 1024)} MB"),
    }
    for key, label in COLUMN_LABELS.items():
        fields[key] = serializers.CharField(required=False, allow_blank=True, max_length=60,
                                            help_text=f"{label} (default: the setup's remembered mapping, else "
                                                      f"'{DEFAULT_COLUMNS[key]}')")
    return type("StatementUploadSerializer", (serializers.Serializer,), fields)


StatementUploadSerializer = _statement_upload_serializer()


class CollectionRequestSerializer(serializers.ModelSerializer):
    amount = MoneyField(read_only=True)

    class Meta:
        model = CollectionRequest
        fields = ["id", "loan", "reference_id", "amount", "msisdn", "status", "reason", "transaction", "created_at", "finished_at"]
        read_only_fields = fields


class CollectionRequestWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all())
    amount = MoneyField()


class DisbursementSerializer(serializers.ModelSerializer):
    amount = MoneyField(read_only=True)

    class Meta:
        model = Disbursement
        fields = ["id", "loan", "batch", "msisdn", "amount", "status", "originator_id", "confirmation_number", "failure_reason",
                  "attempts", "sent_at", "completed_at", "created_by", "created_at"]
        read_only_fields = fields


class DisbursementWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all(), help_text="An approved loan whose client has a payout wallet")


class BatchSerializer(serializers.ModelSerializer):
    total = MoneyField(read_only=True)

    class Meta:
        model = DisbursementBatch
        fields = ["id", "total", "count", "created_by", "approved_by", "approved_at", "sent_at", "created_at"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="List mobile-money provider setups", responses={200: ProviderSetupSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a provider setup", responses={200: ProviderSetupSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class ProviderSetupViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ProviderSetupSerializer
    lookup_url_kwarg = "providersetup_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.MOBILE_MONEY_SETUP, "retrieve": Right.MOBILE_MONEY_SETUP}

    def get_queryset(self):
        return selectors.setup_list(entity=self.entity).order_by("pk")


@extend_schema_view(
    list=extend_schema(summary="List mobile payments in",
                       parameters=[OpenApiParameter("status", str, enum=TransactionStatus.values)],
                       responses={200: ProviderTransactionSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a mobile payment", responses={200: ProviderTransactionSerializer, 403: NO_RIGHT,
                                                                        404: NOT_FOUND}),
)
class MobilePaymentViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ProviderTransactionSerializer
    lookup_url_kwarg = "providertransaction_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.CAPTURE_RECEIPTS, "retrieve": Right.CAPTURE_RECEIPTS, "allocate": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        status_ = query_choice(self.request, "status", TransactionStatus.values)
        return selectors.transaction_list(entity=self.entity, status=status_).order_by("pk")

    @extend_schema(summary="Allocate a payment in suspense to a loan",
                   description="Posts the receipt (with the provider's transaction number) and queues the client's "
                               "confirmation SMS; audited. 400 not_in_suspense once allocated. Needs 'Receipts: capture'.",
                   request=AllocateSerializer, responses={200: ProviderTransactionSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def allocate(self, request, *args, **kwargs):
        txn = self.get_object()
        serializer = AllocateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        txn = services.suspense_allocate(txn=txn, actor=request.user, loan=serializer.validated_data["loan"])
        return Response(ProviderTransactionSerializer(txn).data)


@extend_schema_view(
    list=extend_schema(summary="List MoMo requests to pay", responses={200: CollectionRequestSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a request to pay", responses={200: CollectionRequestSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(summary="Ask a client to pay a loan from their MoMo wallet",
                         description="MTN MoMo request-to-pay to the client's cellphone; the payment is recorded once MoMo "
                                     "reports it SUCCESSFUL. Needs 'Receipts: capture'.",
                         request=CollectionRequestWriteSerializer,
                         responses={201: CollectionRequestSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class CollectionRequestViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CollectionRequestSerializer
    lookup_url_kwarg = "collectionrequest_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.CAPTURE_RECEIPTS, "retrieve": Right.CAPTURE_RECEIPTS, "create": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        return CollectionRequest.objects.filter(entity=self.entity).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = CollectionRequestWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        setup = ProviderSetup.objects.filter(entity=self.entity, provider="momo", is_active=True).select_related("entity").first()
        if setup is None:
            raise serializers.ValidationError({"provider": ["Set up MTN MoMo first."]})
        made = collections.collection_request(setup=setup, loan=serializer.validated_data["loan"],
                                              amount=serializer.validated_data["amount"], actor=request.user)
        return Response(CollectionRequestSerializer(made).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List mobile disbursements", responses={200: DisbursementSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a mobile disbursement", responses={200: DisbursementSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(summary="Make a mobile disbursement (payment pending)",
                         description="The approved loan waits, payment pending, for the next send. Needs 'Disburse'.",
                         request=DisbursementWriteSerializer, responses={201: DisbursementSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class DisbursementViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DisbursementSerializer
    lookup_url_kwarg = "disbursement_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.DISBURSE_LOANS, "retrieve": Right.DISBURSE_LOANS, "create": Right.DISBURSE_LOANS,
                       "cancel": Right.DISBURSE_LOANS, "check": Right.DISBURSE_LOANS, "send": Right.DISBURSE_LOANS}

    def get_queryset(self):
        return selectors.disbursement_list(entity=self.entity).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = DisbursementWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        made = disbursements.disbursement_mark(loan=serializer.validated_data["loan"], actor=request.user)
        return Response(DisbursementSerializer(made).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Send mobile payments",
                   description="Consolidates every payment pending into one batch. Within the caller's disbursement limit "
                               "it is sent now; above it, it waits for approval by a user whose limit covers the total.",
                   request=None, responses={201: BatchSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    @action(detail=False, methods=["post"])
    def send(self, request, *args, **kwargs):
        batch = disbursements.payments_send(entity=self.entity, actor=request.user)
        return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Cancel a payment not yet sent", request=None,
                   responses={200: DisbursementSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        return Response(DisbursementSerializer(disbursements.disbursement_cancel(disbursement=self.get_object(),
                                                                                 actor=request.user)).data)

    @extend_schema(summary="Ask the provider where a sent payment stands",
                   description="M-PESA answers by callback: read the disbursement again shortly.", request=None,
                   responses={200: DisbursementSerializer, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def check(self, request, *args, **kwargs):
        return Response(DisbursementSerializer(disbursements.disbursement_check(disbursement=self.get_object())).data)


@extend_schema_view(
    list=extend_schema(summary="List mobile payment batches", responses={200: BatchSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a batch", responses={200: BatchSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class BatchViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = BatchSerializer
    lookup_url_kwarg = "disbursementbatch_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.DISBURSE_LOANS, "retrieve": Right.DISBURSE_LOANS, "approve": Right.DISBURSE_LOANS}

    def get_queryset(self):
        return DisbursementBatch.objects.filter(entity=self.entity).order_by("pk")

    @extend_schema(summary="Approve a batch over its maker's limit, and send it",
                   description="By a user other than its maker whose disbursement limit covers the total.", request=None,
                   responses={200: BatchSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def approve(self, request, *args, **kwargs):
        return Response(BatchSerializer(disbursements.batch_approve(batch=self.get_object(), actor=request.user)).data)


@extend_schema_view(
    list=extend_schema(summary="List statement imports", responses={200: StatementImportSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a statement import (state and progress of its import)",
                           responses={200: StatementImportSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class StatementImportViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = StatementImportSerializer
    lookup_url_kwarg = "statementimport_id"
    lookup_value_regex = r"[0-9]+"
    parser_classes = [MultiPartParser, JSONParser]
    required_rights = {"list": Right.CAPTURE_RECEIPTS, "retrieve": Right.CAPTURE_RECEIPTS, "create": Right.CAPTURE_RECEIPTS,
                       "confirm": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        return selectors.import_list(entity=self.entity).order_by("pk")

    @extend_schema(summary="Upload a provider statement for preview",
                   description="Multipart: the statement file (CSV or XLSX; preamble rows above the header are skipped) "
                               "and, optionally, the column names (remembered per setup). Nothing is posted: the answer "
                               "counts the lines by what they would become and lists the lines that are not matched "
                               "with their line numbers. A file that does not read is refused naming the problem. "
                               "Audited. Needs 'Receipts: capture'.",
                   request={"multipart/form-data": StatementUploadSerializer},
                   responses={201: StatementPreviewSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def create(self, request, *args, **kwargs):
        serializer = StatementUploadSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise serializers.ValidationError({"file": [f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: split it."]})
        preview = services.statement_upload(setup=data["setup"], actor=request.user, file_name=upload.name,
                                            content=upload.read(), columns={k: data.get(k, "") for k in COLUMN_LABELS})
        lines = [line for line in preview.lines if line.kind != "matched"][:PREVIEW_LINES]
        body = StatementPreviewSerializer({"statement": preview.statement, "counts": preview.counts, "lines": lines}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Import a previewed statement (in the background)",
                   description="Starts the import on the background worker and answers at once (202): follow its "
                               "state and progress by reading the import. Each line is posted once (by its "
                               "transaction number); a statement is imported once, and one whose import failed can "
                               "be confirmed again. Audited. Needs 'Receipts: capture'.",
                   request=None, responses={202: StatementImportSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def confirm(self, request, *args, **kwargs):
        started = services.statement_confirm(statement=self.get_object(), actor=request.user)
        return Response(StatementImportSerializer(started).data, status=status.HTTP_202_ACCEPTED)


router = SimpleRouter()
router.register("mobile-money/providers", ProviderSetupViewSet, basename="mm-provider")
router.register("mobile-money/payments", MobilePaymentViewSet, basename="mm-payment")
router.register("mobile-money/requests-to-pay", CollectionRequestViewSet, basename="mm-request-to-pay")
router.register("mobile-money/disbursements", DisbursementViewSet, basename="mm-disbursement")
router.register("mobile-money/batches", BatchViewSet, basename="mm-batch")
router.register("mobile-money/statements", StatementImportViewSet, basename="mm-statement")

urlpatterns = router.urls
