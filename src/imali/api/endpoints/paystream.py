"""The payment stream over the API: the client's registration, accounts (with the check-digit
test), wallets, credit payments (one or two accounts plus cash), card-issue receipts, promissory
notes from a loan's schedule (create, cancel, print, instalment edits), the request log and the
stream settings (password write-only). Every action needs "Allow access to payment-stream web
services"; the services in imali.paystream decide, a ValidationError becomes a 400 naming the field."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
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
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin, query_choice, query_int
from imali.api.errors import validation_detail
from imali.api.openapi import too_many_requests
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import (
    EntityRelatedField,
    MoneyField,
    StrictBooleanField,
    StrictIntegerField,
)
from imali.clients.models import BankAccountType, Client, ClientAccount
from imali.loans.models import Loan
from imali.paystream import selectors, services
from imali.paystream.models import (
    CollectionKind,
    CollectionResult,
    CreditPayment,
    NoteInstalment,
    PaymentStreamKind,
    PromissoryNote,
    StreamAccount,
    StreamRequest,
    StreamSettings,
    WalletRequest,
)
from imali.tenancy.rights import Right

RIGHT = Right.PAYMENT_STREAM_WEB_SERVICES
BAD_INPUT = OpenApiResponse(description="Bad input or refused by the stream: the body maps each field at fault to its messages "
                                        "(the stream's own refusals keep its code, e.g. cdv_090, not_printable).")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks 'Allow access to payment-stream web services'.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")
ASKED_RECENTLY = too_many_requests("The stream was asked about this client's wallets moments ago (code asked_recently): "
                                   "wait Retry-After seconds.")
PDF = {(200, "application/pdf"): OpenApiTypes.BINARY, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND}


def _pdf(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


# --- serializers ---------------------------------------------------------------------------------
class TextField(serializers.CharField):
    """Text that must arrive as a JSON string (DRF's CharField would take 0 as "0", which the
    schema (type string) says is invalid), at most max_length characters as sent."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        # The bound is on what was sent, as the schema's maxLength: DRF trims first, so 81 characters
        # starting with a control character Python counts as space (\x1e) were taken (schemathesis).
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StreamAccountSerializer(serializers.ModelSerializer):
    kind = serializers.CharField(source="account.kind", read_only=True)
    description = serializers.CharField(source="account.__str__", read_only=True)
    client_account = StrictIntegerField(source="account_id", read_only=True)

    class Meta:
        model = StreamAccount
        fields = ["id", "client_account", "kind", "description", "reference", "cdv_bank", "created_at"]
        read_only_fields = fields


class WalletSerializer(serializers.ModelSerializer):
    class Meta:
        model = WalletRequest
        fields = ["id", "cellphone", "status", "reference", "wallet_number", "account", "failure", "created_at", "completed_at"]
        read_only_fields = fields


class StreamClientSerializer(serializers.Serializer):
    client = StrictIntegerField()
    reference = serializers.CharField(allow_blank=True, help_text="The stream's client reference; blank until registered")
    accounts = StreamAccountSerializer(many=True)
    wallets = WalletSerializer(many=True)


class AccountWriteSerializer(serializers.Serializer):
    branch_code = TextField(max_length=6, required=False, allow_blank=True)
    account_number = TextField(max_length=20, required=False, allow_blank=True)
    account_type = serializers.ChoiceField(choices=BankAccountType.choices, required=False)
    bank_name = TextField(max_length=60, required=False, allow_blank=True, default="")
    client_account = EntityRelatedField(
        queryset=ClientAccount.objects.all(), scope=lambda rows, entity: rows.filter(client__entity=entity),
        required=False, allow_null=True,
        help_text="Register one of the client's existing bank accounts instead of the fields above")


class PartSerializer(serializers.Serializer):
    account = StrictIntegerField(help_text="A stream account id (GET the client's stream page)")
    amount = MoneyField()


class PayWriteSerializer(serializers.Serializer):
    client = EntityRelatedField(queryset=Client.objects.all())
    loan = EntityRelatedField(queryset=Loan.objects.all(), required=False, allow_null=True,
                              help_text="A loan's payout: the total must equal its principal")
    accounts = PartSerializer(many=True, min_length=1, max_length=2, help_text="One or two registered accounts")
    cash_amount = MoneyField(allow_zero=True, required=False, default="0")


class CreditPaymentSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditPayment
        fields = ["id", "client", "loan", "account_1", "amount_1", "account_2", "amount_2", "cash_amount", "total", "status",
                  "reference", "idempotency_reference", "rejection", "problem", "created_at"]
        read_only_fields = fields


class CardWriteSerializer(serializers.Serializer):
    card_number = TextField(max_length=23)


class NoteInstalmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = NoteInstalment
        fields = ["seq", "action_date", "amount", "tracking_days", "status"]
        read_only_fields = fields


class NoteSerializer(serializers.ModelSerializer):
    instalments = NoteInstalmentSerializer(many=True, read_only=True)

    class Meta:
        model = PromissoryNote
        fields = ["id", "loan", "client", "stream", "account", "mandate", "status", "reference", "tracking_days", "total", "cancelled_at",
                  "created_at", "instalments"]
        read_only_fields = fields


class NoteWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all())
    stream = serializers.ChoiceField(choices=PaymentStreamKind.choices)
    account = EntityRelatedField(queryset=StreamAccount.objects.all(), help_text="A registered bank account of the loan's client")
    tracking_days = StrictIntegerField(min_value=0, max_value=32, required=False, default=0)


class InstalmentWriteSerializer(serializers.Serializer):
    seq = StrictIntegerField(min_value=1)
    action_date = serializers.DateField(required=False, allow_null=True)
    amount = MoneyField(required=False, allow_null=True, help_text="EFT and Social Grant EFT notes only")
    tracking_days = StrictIntegerField(min_value=0, max_value=32, required=False, allow_null=True)


class RequestSerializer(serializers.ModelSerializer):
    class Meta:
        model = StreamRequest
        fields = ["id", "function", "idempotency_reference", "object_type", "object_id", "status", "attempts", "reference",
                  "error_code", "error_message", "actor", "created_at", "completed_at"]
        read_only_fields = fields


class SettingsSerializer(serializers.Serializer):
    base_url = serializers.URLField(max_length=StreamSettings._meta.get_field("base_url").max_length)
    username = TextField(max_length=80)
    password = TextField(max_length=200, write_only=True, required=False, allow_blank=True,
                                     help_text="Write-only; blank or absent keeps the stored one")
    branch_code = TextField(max_length=20, required=False, allow_blank=True, default="")
    timeout_seconds = StrictIntegerField(min_value=1, max_value=120, required=False, default=10)
    decline_sms = StrictBooleanField(required=False, default=False,
                                           help_text="SMS the client when a debit is declined or returned unpaid")
    has_password = serializers.BooleanField(read_only=True)


# --- views ---------------------------------------------------------------------------------------
@extend_schema_view(retrieve=extend_schema(summary="A client's payment-stream page: registration, accounts, wallets",
                                           responses={200: StreamClientSerializer, 403: NO_RIGHT, 404: NOT_FOUND}))
class StreamClientViewSet(EntityScopedMixin, viewsets.GenericViewSet):
    # What OPTIONS describes; each action names its own request body in the schema.
    serializer_class = StreamClientSerializer
    lookup_url_kwarg = "client_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {a: RIGHT for a in ("retrieve", "register", "accounts", "wallet", "wallet_refresh", "card_receipt")}

    def get_queryset(self):
        return Client.objects.filter(entity=self.entity).select_related("branch", "employer")

    def retrieve(self, request, *args, **kwargs):
        client = self.get_object()
        registration = selectors.client_registration(entity=self.entity, client=client)
        return Response(StreamClientSerializer({
            "client": client.pk, "reference": registration.reference if registration else "",
            "accounts": selectors.stream_accounts(entity=self.entity, client=client),
            "wallets": selectors.wallet_requests(entity=self.entity, client=client)}).data)

    @extend_schema(summary="AddClient: register the client (and first its employer) at the stream", request=None,
                   responses={200: StreamClientSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def register(self, request, *args, **kwargs):
        client = self.get_object()
        services.client_register(entity=self.entity, actor=request.user, client=client)
        return self.retrieve(request, *args, **kwargs)

    @extend_schema(summary="AddClientAccount: a bank account, after the check-digit test", request=AccountWriteSerializer,
                   responses={201: StreamAccountSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def accounts(self, request, *args, **kwargs):
        client = self.get_object()
        serializer = AccountWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        existing = data.pop("client_account", None)
        if existing is not None and existing.client_id != client.pk:
            raise serializers.ValidationError({"client_account": ["No such account of this client."]})
        if existing is None:
            registered = services.account_register(entity=self.entity, actor=request.user, client=client, **data)
        else:
            try:
                registered = services.account_register(entity=self.entity, actor=request.user, client=client, account=existing,
                                                       account_type=existing.account_type, bank_name=data.get("bank_name", ""))
            except DjangoValidationError as exc:
                # The service names its argument `account`; the caller sent `client_account`.
                raise serializers.ValidationError({"client_account" if field == "account" else field: errors
                                                   for field, errors in validation_detail(exc).items()}) from None
        return Response(StreamAccountSerializer(registered).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="CreateWallet: the stream creates it later (normally within 10 minutes)", request=None,
                   responses={201: WalletSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def wallet(self, request, *args, **kwargs):
        wallet = services.wallet_create(entity=self.entity, actor=request.user, client=self.get_object())
        return Response(WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Ask the stream about the client's requested wallets; a created one joins the accounts",
                   description=f"The client's wallet requests, after asking the stream about those still being made. "
                               f"Like the client page's \"Ask the stream now\": at most once per "
                               f"{services.ASK_MIN_SECONDS} seconds per client (screen or API), audited.",
                   request=None, parameters=[ASKED_RECENTLY[1]],
                   responses={200: WalletSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND,
                              429: ASKED_RECENTLY[0]})
    @action(detail=True, methods=["post"], url_path="wallet-refresh", pagination_class=None)  # a plain list
    def wallet_refresh(self, request, *args, **kwargs):
        client = self.get_object()
        services.wallets_ask(entity=self.entity, actor=request.user, client=client)
        return Response(WalletSerializer(selectors.wallet_requests(entity=self.entity, client=client), many=True).data)

    @extend_schema(summary="PrintCardIssueReceipt: only for a card assigned to the client", request=CardWriteSerializer,
                   responses=PDF)
    @action(detail=True, methods=["post"], url_path="card-receipt")
    def card_receipt(self, request, *args, **kwargs):
        client = self.get_object()
        serializer = CardWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        receipt, pdf = services.card_issue_receipt_print(entity=self.entity, actor=request.user, client=client,
                                                         card_number=serializer.validated_data["card_number"])
        return _pdf(pdf, f"card-issue-receipt-{client.number}-{receipt.card_last_four}")


@extend_schema_view(
    list=extend_schema(summary="Credit payments", parameters=[OpenApiParameter("client", int), OpenApiParameter("loan", int)],
                       responses={200: CreditPaymentSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="A credit payment", responses={200: CreditPaymentSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(summary="PayToClientAccount: one or two registered accounts plus cash",
                         description="Accepted means only that the stream validated the request. For a loan, a payout still "
                                     "waiting for the stream's answer is resent with its own idempotency reference.",
                         request=PayWriteSerializer, responses={201: CreditPaymentSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class CreditPaymentViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = CreditPaymentSerializer
    lookup_url_kwarg = "creditpayment_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {a: RIGHT for a in ("list", "retrieve", "create", "retry", "print")}

    def get_queryset(self):
        rows = CreditPayment.objects.filter(entity=self.entity).order_by("-id")
        client, loan = query_int(self.request, "client"), query_int(self.request, "loan")
        if client is not None:
            rows = rows.filter(client_id=client)
        if loan is not None:
            rows = rows.filter(loan_id=loan)
        return rows

    def create(self, request, *args, **kwargs):
        serializer = PayWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        accounts = {a.pk: a for a in selectors.stream_accounts_qs(entity=self.entity, client=data["client"])}
        parts = [(accounts.get(part["account"]), part["amount"]) for part in data["accounts"]]
        payment = services.credit_pay(entity=self.entity, actor=request.user, client=data["client"], loan=data.get("loan"),
                                      parts=parts, cash_amount=data.get("cash_amount") or "0")
        return Response(CreditPaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Resend a payment with no recorded answer (same idempotency reference)", request=None,
                   responses={200: CreditPaymentSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def retry(self, request, *args, **kwargs):
        payment = services.credit_payment_retry(entity=self.entity, actor=request.user, payment=self.get_object())
        return Response(CreditPaymentSerializer(payment).data)

    @extend_schema(summary="PrintClientCredit: the confirmation (status at the stream, not at the bank)", request=None,
                   responses=PDF)
    @action(detail=True, methods=["post"])
    def print(self, request, *args, **kwargs):
        payment = self.get_object()
        _, pdf = services.client_credit_print(entity=self.entity, actor=request.user, payment=payment)
        return _pdf(pdf, f"client-credit-{payment.reference}")


@extend_schema_view(
    list=extend_schema(summary="Promissory notes", parameters=[OpenApiParameter("loan", int)],
                       responses={200: NoteSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="A promissory note", responses={200: NoteSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(summary="CreatePromissory from the loan's schedule (NAEDO, EFT, Social Grant EFT)",
                         request=NoteWriteSerializer, responses={201: NoteSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class PromissoryNoteViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NoteSerializer
    lookup_url_kwarg = "promissorynote_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {a: RIGHT for a in ("list", "retrieve", "create", "cancel", "print", "instalment")}

    def get_queryset(self):
        rows = PromissoryNote.objects.filter(entity=self.entity).prefetch_related("instalments").order_by("-id")
        loan = query_int(self.request, "loan")
        return rows.filter(loan_id=loan) if loan is not None else rows

    def create(self, request, *args, **kwargs):
        serializer = NoteWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        note = services.note_create(entity=self.entity, actor=request.user, **serializer.validated_data)
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="CancelPromissory: no instalment is presented after it", request=None,
                   responses={200: NoteSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        return Response(NoteSerializer(services.note_cancel(entity=self.entity, actor=request.user, note=self.get_object())).data)

    @extend_schema(summary="PrintPromissory: ACTIVE, PENDING or CANCELLED only; CANCELLED gives the cancellation",
                   request=None, responses=PDF)
    @action(detail=True, methods=["post"])
    def print(self, request, *args, **kwargs):
        note = self.get_object()
        document, pdf = services.note_print(entity=self.entity, actor=request.user, note=note)
        return _pdf(pdf, f"{document.kind.replace('_', '-')}-{note.reference}")

    @extend_schema(summary="EditInstalment: action date, amount (EFT, Social Grant EFT only) or tracking",
                   request=InstalmentWriteSerializer, responses={200: NoteSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def instalment(self, request, *args, **kwargs):
        note = self.get_object()
        serializer = InstalmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.instalment_edit(entity=self.entity, actor=request.user, note=note, seq=data["seq"],
                                 action_date=data.get("action_date"), amount=data.get("amount"), tracking_days=data.get("tracking_days"))
        return Response(NoteSerializer(self.get_queryset().get(pk=note.pk)).data)


@extend_schema_view(list=extend_schema(summary="The payment-stream request log", responses={200: RequestSerializer(many=True), 403: NO_RIGHT}))
class StreamRequestViewSet(EntityScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = RequestSerializer
    required_rights = {"list": RIGHT}

    def get_queryset(self):
        return selectors.request_log(entity=self.entity)


class CollectionResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = CollectionResult
        fields = ["id", "note", "instalment", "reference", "kind", "amount", "result_date", "reason", "original_reference",
                  "receipt", "problem", "imported_at"]
        read_only_fields = fields


class ImportSummarySerializer(serializers.Serializer):
    collected = StrictIntegerField()
    declined = StrictIntegerField()
    returned = StrictIntegerField()
    repeated = StrictIntegerField()
    problems = StrictIntegerField()
    unknown = StrictIntegerField()
    malformed = StrictIntegerField(help_text="Lines of the feed that could not be read, kept for follow-up")


@extend_schema_view(list=extend_schema(summary="Collection results imported from the stream",
                                       parameters=[OpenApiParameter("loan", int), OpenApiParameter("kind", str, enum=CollectionKind.values)],
                                       responses={200: CollectionResultSerializer(many=True), 403: NO_RIGHT}))
class CollectionResultViewSet(EntityScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = CollectionResultSerializer
    required_rights = {"list": RIGHT, "fetch": RIGHT}

    def get_queryset(self):
        rows = CollectionResult.objects.filter(entity=self.entity).order_by("-id")
        loan = query_int(self.request, "loan")
        if loan is not None:
            rows = rows.filter(note__loan_id=loan)
        kind = query_choice(self.request, "kind", CollectionKind.values)
        return rows.filter(kind=kind) if kind else rows

    @extend_schema(summary="Import the stream's new collection results now", request=None,
                   responses={200: ImportSummarySerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    @action(detail=False, methods=["post"])
    def fetch(self, request, *args, **kwargs):
        return Response(services.collections_fetch(entity=self.entity, actor=request.user).as_dict())


class StreamSettingsView(EntityScopedMixin, APIView):
    required_rights = {"get": RIGHT, "put": RIGHT}
    parser_classes = [JSONParser]  # decline_sms is a JSON boolean: a form field's "0" or "no" would be a guess

    def _data(self):
        current = StreamSettings.objects.filter(entity=self.entity).first()
        if current is None:
            return {"base_url": "", "username": "", "branch_code": "", "timeout_seconds": 10, "decline_sms": False,
                    "has_password": False}
        return {"base_url": current.base_url, "username": current.username, "branch_code": current.branch_code,
                "timeout_seconds": current.timeout_seconds, "decline_sms": current.decline_sms,
                "has_password": bool(current.password)}

    @extend_schema(summary="The stream settings (the password is never returned)", responses={200: SettingsSerializer, 403: NO_RIGHT})
    def get(self, request):
        return Response(SettingsSerializer(self._data()).data)

    @extend_schema(summary="Save the stream settings", request=SettingsSerializer,
                   responses={200: SettingsSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def put(self, request):
        serializer = SettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        services.stream_settings_save(entity=self.entity, actor=request.user, password=data.pop("password", ""), **data)
        return Response(SettingsSerializer(self._data()).data)


router = SimpleRouter()
router.register("payment-stream/clients", StreamClientViewSet, basename="paystream-client")
router.register("payment-stream/payments", CreditPaymentViewSet, basename="paystream-payment")
router.register("payment-stream/notes", PromissoryNoteViewSet, basename="paystream-note")
router.register("payment-stream/requests", StreamRequestViewSet, basename="paystream-request")
router.register("payment-stream/collections", CollectionResultViewSet, basename="paystream-collection")

urlpatterns = [*router.urls, path("payment-stream/settings/", StreamSettingsView.as_view(), name="paystream-settings")]
