"""Loan products, loans (application → approval → disbursement, settlement quotes), receipts
(posting, reversal), change refunds (paying change available back, reversal) and non-loan debits
(adding, settling) of the caller's entity. Thin: the services in imali.loans decide; a service's
ValidationError becomes a 400 naming the field."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from imali.api.base import EntityScopedMixin, query_bool, query_choice, query_int
from imali.api.serializers.fields import (
    EntityRelatedField,
    MoneyField,
    OptionalBooleanField,
    RateField,
    StrictIntegerField,
)
from imali.clients.models import (
    Client,
    ClientAccount,
    ClientStatus,
    PaymentFrequency,
    PaymentMoveDirection,
)
from imali.loans import queries, rules, selectors, services
from imali.loans.models import (
    ChangeRefund,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    PaybackType,
    Product,
    Receipt,
    RefundMethod,
)
from imali.loans.pricing import CreditType
from imali.loans.rules import InstalmentStatus
from imali.tenancy.rights import Right

BAD_INPUT = OpenApiResponse(description="Bad input: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")


# --- serializers ---------------------------------------------------------------------------------
def _choices_text(choices) -> str:
    return "One of: " + ", ".join(f"{value} ({label})" for value, label in choices) + "."


# Plain strings for choice sets other domains also expose (client status, payment frequency),
# so the OpenAPI schema has one enum per set rather than colliding names.
FREQUENCY_FIELD = {"read_only": True, "help_text": _choices_text(PaymentFrequency.choices)}


class ProductSerializer(serializers.ModelSerializer):
    frequency = serializers.CharField(**FREQUENCY_FIELD)

    class Meta:
        model = Product
        fields = ["id", *services.PRODUCT_FIELDS, "created_at"]
        read_only_fields = fields


class ProductWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    # Choice fields, so the schema lists the values (the same enums the product's read side has).
    credit_type = serializers.ChoiceField(choices=CreditType.choices)
    frequency = serializers.ChoiceField(choices=PaymentFrequency.choices)
    min_principal = MoneyField()
    max_principal = MoneyField()
    # At least 1, as the service says (and in its words), so the schema says it too.
    min_instalments = StrictIntegerField(required=False, default=1, min_value=1, error_messages={"min_value": "Must be at least 1."})
    max_instalments = StrictIntegerField(min_value=1, error_messages={"min_value": "Must be at least 1."})
    interest_rate_pm = RateField(help_text="Percent per month")
    charge_initiation_fee = OptionalBooleanField(
        required=False, help_text="Default: yes where the country's cap sets the fee or initiation_fee is given")
    initiation_fee = MoneyField(allow_zero=True, required=False, allow_null=True,
                                help_text="Before VAT; only where no cap is recorded for the entity's country")
    service_fee_pm = MoneyField(allow_zero=True, required=False, default="0")
    vat_rate = RateField(places=2, required=False, help_text="Percent; default the country's")
    is_active = serializers.BooleanField(required=False, default=True)


class ProductUpdateSerializer(ProductWriteSerializer):
    """Any subset of the product's fields; the rest keep their values (caps checked on the result)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty
            # A form body's absent box too (DRF fills it from the default, or False): only what is sent changes.
            field.default_empty_html = serializers.empty


class InstalmentSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField(help_text="On the entity's today: " + _choices_text(InstalmentStatus.choices))

    class Meta:
        model = Instalment
        fields = ["seq", "kind", "due_date", "capital", "interest", "fee", "vat", "amount", "paid", "paid_on", "open", "status"]
        read_only_fields = fields

    def get_status(self, instalment) -> str:
        return rules.instalment_status(amount=instalment.amount, paid=instalment.paid, due_date=instalment.due_date,
                                       as_of=self.context["as_of"]).value


class LoanFiguresSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    outstanding = serializers.DecimalField(max_digits=14, decimal_places=2)
    arrears_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    arrears_days = StrictIntegerField()
    arrears_months = StrictIntegerField()
    next_due_date = serializers.DateField(allow_null=True)
    next_amount_due = serializers.DecimalField(max_digits=14, decimal_places=2)
    settlement = serializers.DecimalField(max_digits=14, decimal_places=2)


class LoanSerializer(serializers.ModelSerializer):
    schedule = serializers.SerializerMethodField()
    figures = serializers.SerializerMethodField(help_text="The loan's derived figures on the day (?as_of=, default today); "
                                                          "in a read of one loan only (null in lists)")
    change_available = serializers.DecimalField(source="change_total", max_digits=14, decimal_places=2, read_only=True,
                                                help_text="Overpayments not yet paid back to the client")
    status = serializers.CharField(read_only=True, help_text=_choices_text(LoanStatus.choices))
    frequency = serializers.CharField(**FREQUENCY_FIELD)
    move_direction = serializers.CharField(read_only=True, help_text=_choices_text(PaymentMoveDirection.choices))

    class Meta:
        model = Loan
        fields = [
            "id", "client", "product", "status", "principal", "instalments", "frequency", "pay_day", "move_direction",
            "interest_rate_pm", "initiation_fee", "service_fee_pm", "vat_rate", "total_repayable", "instalment_amount",
            "applied_on", "approved_at", "disbursed_on", "payout_account", "paid_up_on", "closed_on", "status_reason",
            "default_since", "default_balance", "change_available", "last_receipt_on", "received_total", "schedule",
            "figures",
        ]
        read_only_fields = fields

    def _page(self, loan) -> queries.LoanPage:
        # One read of the schedule serves both the schedule and the figures.
        cache = self.context.setdefault("pages", {})
        if loan.pk not in cache:
            cache[loan.pk] = queries.loan_page(loan=loan, as_of=self.context["as_of"])
        return cache[loan.pk]

    @extend_schema_field(InstalmentSerializer(many=True))
    def get_schedule(self, loan) -> list[dict]:
        if not self.context.get("with_schedule"):
            return []
        return InstalmentSerializer([i for i, _ in self._page(loan).schedule], many=True, context=self.context).data

    @extend_schema_field(LoanFiguresSerializer(allow_null=True))
    def get_figures(self, loan) -> dict | None:
        if not self.context.get("with_schedule"):
            return None
        page = self._page(loan)
        figures = page.figures
        return LoanFiguresSerializer({
            "as_of": self.context["as_of"], "outstanding": figures.outstanding, "arrears_amount": figures.arrears_amount,
            "arrears_days": figures.arrears_days, "arrears_months": figures.arrears_months,
            "next_due_date": figures.next_due_date, "next_amount_due": figures.next_amount_due,
            "settlement": page.settlement,
        }).data


class LoanApplySerializer(serializers.Serializer):
    client = EntityRelatedField(queryset=Client.objects.all())
    product = EntityRelatedField(queryset=Product.objects.all())
    principal = MoneyField(help_text="Within the product's minimum and maximum principal")
    instalments = StrictIntegerField()
    pay_day = StrictIntegerField(required=False, allow_null=True)


class DisburseSerializer(serializers.Serializer):
    payout_account = EntityRelatedField(queryset=ClientAccount.objects.all(),
                                        scope=lambda qs, entity: qs.filter(client__entity=entity))
    disbursed_on = serializers.DateField(required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class SettlementSerializer(serializers.Serializer):
    as_of = serializers.DateField()
    outstanding = serializers.DecimalField(max_digits=14, decimal_places=2)
    settlement = serializers.DecimalField(max_digits=14, decimal_places=2)


class ReceiptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Receipt
        fields = ["id", "client", "loan", "amount", "allocated", "change", "value_date", "payback_type",
                  "external_reference", "is_reversed", "reversed_at", "reversal_reason", "created_at"]
        read_only_fields = fields


class ReceiptWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all())
    amount = MoneyField(help_text="At most the loan's balance (or settlement quote, if larger) plus a tolerance")
    value_date = serializers.DateField()
    payback_type = serializers.ChoiceField(choices=PaybackType.choices)
    external_reference = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ChangeRefundSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChangeRefund
        fields = ["id", "client", "loan", "amount", "paid_on", "method", "reference", "reason", "paid_by",
                  "is_reversed", "reversed_at", "reversal_reason", "created_at"]
        read_only_fields = fields


class ChangeRefundWriteSerializer(serializers.Serializer):
    loan = EntityRelatedField(queryset=Loan.objects.all())
    amount = MoneyField(help_text="At most the loan's change available")
    paid_on = serializers.DateField()
    method = serializers.ChoiceField(choices=RefundMethod.choices)
    reference = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=200)


class NonLoanDebitSerializer(serializers.ModelSerializer):
    class Meta:
        model = NonLoanDebit
        fields = ["id", "client", "description", "amount", "debit_date", "settled_on", "settled_by", "created_by",
                  "created_at"]
        read_only_fields = fields


class NonLoanDebitWriteSerializer(serializers.Serializer):
    client = EntityRelatedField(queryset=Client.objects.all())
    # Checked here, with the amount, so one answer names every field at fault (the service checks again).
    description = serializers.CharField(max_length=120)
    amount = MoneyField()
    debit_date = serializers.DateField()


class SettleSerializer(serializers.Serializer):
    settled_on = serializers.DateField()


class ClientFiguresSerializer(serializers.Serializer):
    """Every derived figure of the book for one client on a day (the snapshot selector's)."""

    as_of = serializers.DateField()
    client_id = StrictIntegerField()
    client_status = serializers.CharField(help_text=_choices_text(ClientStatus.choices))
    new_loans_allowed = serializers.BooleanField()
    outstanding = serializers.DecimalField(max_digits=14, decimal_places=2)
    arrears_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    arrears_days = StrictIntegerField()
    arrears_months = StrictIntegerField()
    next_due_date = serializers.DateField(allow_null=True)
    next_amount_due = serializers.DecimalField(max_digits=14, decimal_places=2)
    due_30 = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Falls due 0–30 days after as_of")
    due_60 = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="31–60 days")
    due_90 = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="61–90 days")
    due_120 = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="91–120 days")
    due_120_plus = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="121 days and later")
    settlement = serializers.DecimalField(max_digits=14, decimal_places=2)
    pct_of_all_capital_pd = serializers.DecimalField(max_digits=9, decimal_places=2)
    last_receipt_date = serializers.DateField(allow_null=True)
    days_since_last_receipt = StrictIntegerField(allow_null=True)
    change_available = serializers.DecimalField(max_digits=14, decimal_places=2)
    non_loan_debt = serializers.DecimalField(max_digits=14, decimal_places=2)
    last_agreement_date = serializers.DateField(allow_null=True)
    last_agreement_product = serializers.CharField()
    days_since_last_loan = StrictIntegerField(allow_null=True)
    open_loans = StrictIntegerField()
    date_totally_paid = serializers.DateField(allow_null=True)


def _reason(request) -> str:
    """The reason a closing or reversing action requires, validated (400 naming `reason`)."""
    serializer = ReasonSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["reason"]


def _id_param(request, name: str) -> int | None:
    return query_int(request, name)


# --- views ---------------------------------------------------------------------------------------
@extend_schema_view(
    list=extend_schema(summary="List loan products", responses={200: ProductSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a loan product", responses={200: ProductSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Create a loan product",
        description="Terms are checked against the statutory caps of the entity's country; an error names the cap "
                    "(code cap_<name>). Needs 'Setups: loan products'.",
        request=ProductWriteSerializer, responses={201: ProductSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
    partial_update=extend_schema(
        summary="Change a loan product",
        description="Only the fields given change; the result is checked against the caps as on creation. Loans "
                    "already captured keep their terms. Audited. Needs 'Setups: loan products'.",
        request=ProductUpdateSerializer, responses={200: ProductSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class ProductViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ProductSerializer
    lookup_url_kwarg = "product_id"
    lookup_value_regex = r"[0-9]+"
    http_method_names = ["get", "post", "patch", "head", "options"]
    required_rights = {"list": Right.VIEW_CLIENTS, "retrieve": Right.VIEW_CLIENTS, "create": Right.MANAGE_PRODUCTS,
                       "partial_update": Right.MANAGE_PRODUCTS}

    def get_queryset(self):
        return selectors.product_list(entity=self.entity).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = ProductWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_create(entity=self.entity, actor=request.user, data=dict(serializer.validated_data))
        return Response(ProductSerializer(product).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        product = self.get_object()
        serializer = ProductUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.product_update(product=product, actor=request.user, data=dict(serializer.validated_data))
        return Response(ProductSerializer(product).data)


@extend_schema_view(
    list=extend_schema(
        summary="List loans",
        parameters=[OpenApiParameter("status", str, enum=LoanStatus.values), OpenApiParameter("client", int)],
        responses={200: LoanSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(
        summary="Read a loan with its schedule and figures",
        parameters=[OpenApiParameter("as_of", OpenApiTypes.DATE, description="YYYY-MM-DD: the day of the figures and instalment statuses; default today")],
        responses={200: LoanSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Capture a loan application",
        description="Terms from the product; caps checked (errors name the cap). Needs 'Loans: capture applications'.",
        request=LoanApplySerializer, responses={201: LoanSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class LoanViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LoanSerializer
    lookup_url_kwarg = "loan_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {
        "list": Right.VIEW_CLIENTS, "retrieve": Right.VIEW_CLIENTS, "settlement": Right.VIEW_CLIENTS,
        "create": Right.CAPTURE_LOANS, "cancel": Right.CAPTURE_LOANS, "approve": Right.APPROVE_LOANS,
        "disburse": Right.DISBURSE_LOANS,
        # Taking a loan off the book or passing it to collectors is an approver's decision.
        "write_off": Right.APPROVE_LOANS, "hand_over": Right.APPROVE_LOANS,
    }

    def get_queryset(self):
        return selectors.loan_list(
            entity=self.entity, status=query_choice(self.request, "status", LoanStatus.values),
            client_id=query_int(self.request, "client"),
        ).order_by("pk")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "with_schedule": self.action != "list", "as_of": self._as_of()}

    def _as_of(self):
        """The day of the figures and instalment statuses: ?as_of= on a read, else the entity's today."""
        raw = self.request.query_params.get("as_of") if self.action in ("retrieve", "settlement") else None
        if raw is None:  # "" is no date either: a 400, as the schema (format date) says
            return services.local_today(self.entity)
        try:
            return serializers.DateField().to_internal_value(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"as_of": exc.detail}) from None

    def _loan_response(self, loan, code=status.HTTP_200_OK):
        return Response(LoanSerializer(loan, context=self.get_serializer_context()).data, status=code)

    def create(self, request, *args, **kwargs):
        serializer = LoanApplySerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        loan = services.loan_apply(entity=self.entity, actor=request.user, client=data["client"], product=data["product"],
                                   principal=data["principal"], instalments=data["instalments"], pay_day=data.get("pay_day"))
        return self._loan_response(loan, status.HTTP_201_CREATED)

    @extend_schema(summary="Approve an application", request=None, responses={200: LoanSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def approve(self, request, *args, **kwargs):
        return self._loan_response(services.loan_approve(loan=self.get_object(), actor=request.user))

    @extend_schema(summary="Disburse an approved loan", description="Within the caller's disbursement limit. Where the entity's Loan OTP (or eSign Loan OTP) "
                               "applies to the loan, its agreement must be signed first (400 on 'signature', "
                               "code not_signed).",
                   request=DisburseSerializer, responses={200: LoanSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def disburse(self, request, *args, **kwargs):
        loan = self.get_object()
        serializer = DisburseSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return self._loan_response(services.loan_disburse(loan=loan, actor=request.user, payout_account=data["payout_account"],
                                                          disbursed_on=data.get("disbursed_on")))

    @extend_schema(summary="Cancel an application or approved loan", request=ReasonSerializer,
                   responses={200: LoanSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        loan = self.get_object()
        reason = _reason(request)
        return self._loan_response(services.loan_cancel(loan=loan, actor=request.user, reason=reason))

    @extend_schema(summary="Write off an active or handed-over loan",
                   description="Takes the loan off the book (its instalments stop counting as owed); the client "
                               "becomes Bad with no new loans. Needs 'Approve loans'.",
                   request=ReasonSerializer, responses={200: LoanSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"], url_path="write-off")
    def write_off(self, request, *args, **kwargs):
        loan = self.get_object()
        reason = _reason(request)
        return self._loan_response(services.loan_write_off(loan=loan, actor=request.user,
                                                           reason=reason))

    @extend_schema(summary="Hand an active loan over to collection",
                   description="The loan stays on the book; the client becomes Handed over with no new loans. "
                               "Needs 'Approve loans'.",
                   request=ReasonSerializer, responses={200: LoanSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"], url_path="hand-over")
    def hand_over(self, request, *args, **kwargs):
        loan = self.get_object()
        reason = _reason(request)
        return self._loan_response(services.loan_hand_over(loan=loan, actor=request.user,
                                                           reason=reason))

    @extend_schema(summary="Settlement quote", parameters=[OpenApiParameter("as_of", OpenApiTypes.DATE, description="YYYY-MM-DD; default today")],
                   responses={200: SettlementSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["get"])
    def settlement(self, request, *args, **kwargs):
        loan = self.get_object()
        as_of = self._as_of()
        return Response(SettlementSerializer({
            "as_of": as_of, "outstanding": selectors.loan_outstanding(loan=loan),
            "settlement": selectors.loan_settlement(loan=loan, as_of=as_of)}).data)


@extend_schema_view(
    list=extend_schema(summary="List receipts", parameters=[OpenApiParameter("loan", int), OpenApiParameter("client", int)],
                       responses={200: ReceiptSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a receipt", responses={200: ReceiptSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Post a receipt",
        description="Allocated oldest instalment first (fees, VAT, interest, capital); an overpayment is change "
                    "available. An external reference is posted once per entity (400 duplicate_reference). "
                    "Needs 'Receipts: capture'.",
        request=ReceiptWriteSerializer, responses={201: ReceiptSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class ReceiptViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ReceiptSerializer
    lookup_url_kwarg = "receipt_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.VIEW_CLIENTS, "retrieve": Right.VIEW_CLIENTS, "create": Right.CAPTURE_RECEIPTS,
                       "reverse": Right.REVERSE_RECEIPTS}

    def get_queryset(self):
        return selectors.receipt_list(entity=self.entity, loan_id=_id_param(self.request, "loan"),
                                      client_id=_id_param(self.request, "client")).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = ReceiptWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        receipt = services.receipt_post(entity=self.entity, actor=request.user, loan=data["loan"], amount=data["amount"],
                                        value_date=data["value_date"], payback_type=data["payback_type"],
                                        external_reference=data["external_reference"])
        return Response(ReceiptSerializer(receipt).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Reverse a receipt", description="Restores the loan exactly as before the receipt. Needs 'Receipts: reverse'.",
                   request=ReasonSerializer, responses={200: ReceiptSerializer, 400: BAD_INPUT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reverse(self, request, *args, **kwargs):
        receipt = self.get_object()
        reason = _reason(request)
        receipt = services.receipt_reverse(receipt=receipt, actor=request.user, reason=reason)
        return Response(ReceiptSerializer(receipt).data)


@extend_schema_view(
    list=extend_schema(summary="List change refunds", parameters=[OpenApiParameter("loan", int), OpenApiParameter("client", int)],
                       responses={200: ChangeRefundSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a change refund", responses={200: ChangeRefundSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Pay change available back to the client",
        description="At most the loan's change available (400 over_change_available); the amount leaves the loan's "
                    "change available in the same transaction. Needs 'Receipts: capture'.",
        request=ChangeRefundWriteSerializer, responses={201: ChangeRefundSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class ChangeRefundViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ChangeRefundSerializer
    lookup_url_kwarg = "changerefund_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.VIEW_CLIENTS, "retrieve": Right.VIEW_CLIENTS, "create": Right.CAPTURE_RECEIPTS,
                       "reverse": Right.REVERSE_RECEIPTS}

    def get_queryset(self):
        return queries.change_refund_list(entity=self.entity, loan_id=_id_param(self.request, "loan"),
                                          client_id=_id_param(self.request, "client")).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = ChangeRefundWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        refund = services.change_refund(entity=self.entity, actor=request.user, loan=data["loan"], amount=data["amount"],
                                        paid_on=data["paid_on"], method=data["method"], reference=data["reference"],
                                        reason=data["reason"])
        return Response(ChangeRefundSerializer(refund).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Reverse a change refund", description="Its amount is change available again. Needs 'Receipts: reverse'.",
                   request=ReasonSerializer, responses={200: ChangeRefundSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reverse(self, request, *args, **kwargs):
        refund = self.get_object()
        reason = _reason(request)
        refund = services.change_refund_reverse(refund=refund, actor=request.user, reason=reason)
        return Response(ChangeRefundSerializer(refund).data)


@extend_schema_view(
    list=extend_schema(summary="List non-loan debits",
                       parameters=[OpenApiParameter("client", int), OpenApiParameter("open", bool, description="Only unsettled")],
                       responses={200: NonLoanDebitSerializer(many=True), 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a non-loan debit", responses={200: NonLoanDebitSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
    create=extend_schema(
        summary="Add a non-loan debit to a client",
        description="A debt that is not a loan instalment; it counts as non-loan debt until settled. "
                    "Needs 'Clients: create and edit'.",
        request=NonLoanDebitWriteSerializer, responses={201: NonLoanDebitSerializer, 400: BAD_INPUT, 403: NO_RIGHT}),
)
class NonLoanDebitViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = NonLoanDebitSerializer
    lookup_url_kwarg = "nonloandebit_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.VIEW_CLIENTS, "retrieve": Right.VIEW_CLIENTS, "create": Right.MANAGE_CLIENTS,
                       "settle": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        open_only = bool(query_bool(self.request, "open"))
        return queries.non_loan_debit_list(entity=self.entity, client_id=_id_param(self.request, "client"),
                                           open_only=open_only).order_by("pk")

    def create(self, request, *args, **kwargs):
        serializer = NonLoanDebitWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        debit = services.non_loan_debit_add(entity=self.entity, actor=request.user, client=data["client"],
                                            description=data["description"], amount=data["amount"],
                                            debit_date=data["debit_date"])
        return Response(NonLoanDebitSerializer(debit).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Settle a non-loan debit", description="Needs 'Receipts: capture'.",
                   request=SettleSerializer, responses={200: NonLoanDebitSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def settle(self, request, *args, **kwargs):
        debit = self.get_object()
        serializer = SettleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        debit = services.non_loan_debit_settle(debit=debit, actor=request.user, settled_on=serializer.validated_data["settled_on"])
        return Response(NonLoanDebitSerializer(debit).data)


class ClientFiguresViewSet(EntityScopedMixin, viewsets.GenericViewSet):
    """The loan screens' client figures over the API: `GET /api/client-figures/<client id>/?as_of=`."""

    serializer_class = ClientFiguresSerializer
    lookup_url_kwarg = "client_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"retrieve": Right.VIEW_CLIENTS}

    def get_queryset(self):
        return Client.objects.filter(entity=self.entity)

    @extend_schema(
        summary="A client's loan-book figures on a day",
        description="Outstanding, arrears, next due, obligation buckets, settlement, %OfAllCapitalPD, last receipt, "
                    "change available, non-loan debt, last agreement, date totally paid; with the client's status "
                    "and New Loans Allowed. Needs 'Clients: view'.",
        parameters=[OpenApiParameter("as_of", OpenApiTypes.DATE, description="YYYY-MM-DD; default the entity's today")],
        responses={200: ClientFiguresSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def retrieve(self, request, *args, **kwargs):
        client = self.get_object()
        raw = request.query_params.get("as_of")
        try:
            as_of = serializers.DateField().to_internal_value(raw) if raw is not None else services.local_today(self.entity)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"as_of": exc.detail}) from None
        figures = selectors.client_figures(entity=self.entity, client_id=client.pk, as_of=as_of)
        return Response(ClientFiguresSerializer({
            **figures.as_dict(), "as_of": as_of, "client_id": client.pk, "client_status": client.status,
            "new_loans_allowed": client.new_loans_allowed}).data)


router = SimpleRouter()
router.register("loan-products", ProductViewSet, basename="product")
router.register("loans", LoanViewSet, basename="loan")
router.register("receipts", ReceiptViewSet, basename="receipt")
router.register("change-refunds", ChangeRefundViewSet, basename="change-refund")
router.register("non-loan-debits", NonLoanDebitViewSet, basename="non-loan-debit")
router.register("client-figures", ClientFiguresViewSet, basename="client-figures")

urlpatterns = router.urls
