"""SMS banking over the API: set a client's PIN (branch staff), and list, confirm or reject the
field collections loan officers recorded by SMS and the mobile-money payment notices that came by
SMS (unverified claims until a branch user has checked the provider's statement). Thin: imali.smsbanking.services decide; a
service's ValidationError becomes a 400 naming the field. A PIN is write-only and never echoed."""

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

from imali.api.base import EntityScopedMixin, query_choice
from imali.api.serializers.fields import EntityRelatedField, StrictIntegerField
from imali.clients.models import Client
from imali.smsbanking import selectors, services
from imali.smsbanking.models import CollectionStatus, FieldCollection, ProviderPayment
from imali.tenancy.rights import Right

BAD_INPUT = OpenApiResponse(description="Bad input: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")


class PinWriteSerializer(serializers.Serializer):
    client = EntityRelatedField(queryset=Client.objects.all(), help_text="The client's id")
    pin = serializers.CharField(write_only=True, min_length=4, max_length=6,
                                help_text="4 to 6 digits, not one digit repeated, not a run such as 1234")


class PinSerializer(serializers.Serializer):
    client = StrictIntegerField(source="client_id")
    set_at = serializers.DateTimeField()
    set_via = serializers.CharField()


class FieldCollectionSerializer(serializers.ModelSerializer):
    client_number = StrictIntegerField(source="client.number", read_only=True)
    officer = serializers.CharField(source="officer.username", read_only=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = FieldCollection
        fields = ["id", "client", "client_number", "loan", "officer", "amount", "collected_on", "status", "receipt",
                  "reject_reason", "decided_at", "created_at"]
        read_only_fields = fields


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


@extend_schema_view(create=extend_schema(
    summary="Set a client's SMS-banking PIN",
    description="Stored as an Argon2 hash only; clears wrong tries and a lock. The PIN is never returned. "
                "Needs 'Clients: create and edit'.",
    request=PinWriteSerializer, responses={201: PinSerializer, 400: BAD_INPUT, 403: NO_RIGHT}))
class PinViewSet(EntityScopedMixin, viewsets.GenericViewSet):
    serializer_class = PinWriteSerializer
    required_rights = {"create": Right.MANAGE_CLIENTS}

    def create(self, request, *args, **kwargs):
        serializer = PinWriteSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        row = services.pin_set(actor=request.user, entity=self.entity, client=serializer.validated_data["client"],
                               pin=serializer.validated_data["pin"], via="api")
        return Response(PinSerializer(row).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="List field collections",
                       parameters=[OpenApiParameter("status", str, enum=CollectionStatus.values,
                                                    description="Default: all")],
                       responses={200: FieldCollectionSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a field collection",
                           responses={200: FieldCollectionSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class FieldCollectionViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = FieldCollectionSerializer
    lookup_url_kwarg = "fieldcollection_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.CAPTURE_RECEIPTS, "retrieve": Right.CAPTURE_RECEIPTS,
                       "confirm": Right.CAPTURE_RECEIPTS, "reject": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        status_ = query_choice(self.request, "status", CollectionStatus.values) if self.action == "list" else None
        return selectors.collection_list(entity=self.entity, status=status_).order_by("pk")

    @extend_schema(summary="Confirm a field collection: the cash is at the branch",
                   description="Posts the receipt through the loans receipt service (cash, reference FIELD-<id>) and "
                               "SMSes the client. Needs 'Receipts: capture'.",
                   request=None, responses={200: FieldCollectionSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def confirm(self, request, *args, **kwargs):
        row = self.get_object()
        row = services.collection_confirm(actor=request.user, entity=self.entity, collection_id=row.pk)
        return Response(FieldCollectionSerializer(row).data)

    @extend_schema(summary="Reject a field collection", description="SMSes the officer the reason. Needs 'Receipts: capture'.",
                   request=RejectSerializer, responses={200: FieldCollectionSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reject(self, request, *args, **kwargs):
        row = self.get_object()
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = services.collection_reject(actor=request.user, entity=self.entity, collection_id=row.pk,
                                         reason=serializer.validated_data["reason"])
        return Response(FieldCollectionSerializer(row).data)


class PaymentNoticeSerializer(serializers.ModelSerializer):
    provider = serializers.CharField(source="provider.name", read_only=True)
    client_number = StrictIntegerField(source="client.number", read_only=True, allow_null=True)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)
    outcome = serializers.CharField(read_only=True, help_text="What recording the notice found: the client and loan "
                                                               "matched, or why none was")

    class Meta:
        model = ProviderPayment
        fields = ["id", "provider", "reference", "phone", "amount", "client", "client_number", "loan", "outcome",
                  "status", "receipt", "reject_reason", "decided_at", "created_at"]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(summary="List mobile-money payment notices received by SMS",
                       parameters=[OpenApiParameter("status", str, enum=CollectionStatus.values,
                                                    description="Default: all")],
                       responses={200: PaymentNoticeSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT}),
    retrieve=extend_schema(summary="Read a payment notice",
                           responses={200: PaymentNoticeSerializer, 403: NO_RIGHT, 404: NOT_FOUND}),
)
class PaymentNoticeViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PaymentNoticeSerializer
    lookup_url_kwarg = "providerpayment_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {"list": Right.CAPTURE_RECEIPTS, "retrieve": Right.CAPTURE_RECEIPTS,
                       "confirm": Right.CAPTURE_RECEIPTS, "reject": Right.CAPTURE_RECEIPTS}

    def get_queryset(self):
        status_ = query_choice(self.request, "status", CollectionStatus.values) if self.action == "list" else None
        return selectors.provider_payment_list(entity=self.entity, status=status_).order_by("pk")

    @extend_schema(summary="Confirm a payment notice: the money is on the provider's statement",
                   description="Posts the receipt on the loan the notice matched (payback type mobile money, external "
                               "reference the provider's reference, so a payment that also came by a mobile-money "
                               "callback is posted once) and SMSes the client. A notice that matched no single open "
                               "loan can only be rejected. Needs 'Receipts: capture'.",
                   request=None, responses={200: PaymentNoticeSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def confirm(self, request, *args, **kwargs):
        row = self.get_object()
        row = services.provider_payment_confirm(actor=request.user, entity=self.entity, payment_id=row.pk)
        return Response(PaymentNoticeSerializer(row).data)

    @extend_schema(summary="Reject a payment notice", description="With a reason; nothing is posted. "
                                                                  "Needs 'Receipts: capture'.",
                   request=RejectSerializer, responses={200: PaymentNoticeSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    @action(detail=True, methods=["post"])
    def reject(self, request, *args, **kwargs):
        row = self.get_object()
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = services.provider_payment_reject(actor=request.user, entity=self.entity, payment_id=row.pk,
                                               reason=serializer.validated_data["reason"])
        return Response(PaymentNoticeSerializer(row).data)


router = SimpleRouter()
router.register("smsbanking/pins", PinViewSet, basename="smsbanking-pin")
router.register("field-collections", FieldCollectionViewSet, basename="field-collection")
router.register("payment-notices", PaymentNoticeViewSet, basename="payment-notice")

urlpatterns = router.urls
