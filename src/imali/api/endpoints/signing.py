"""OTP signing over the API: the OTP setup, cellphone enrolment, signing a loan agreement or a
debit mandate (send/resend, verify, finish by hand, override), the signed agreement and its
tamper check, and the Contracts issued / loan OTP audit / Login Detail reports.

Thin: every rule is in imali.signing.services. A service's ValidationError is a 400 naming the
field (a wrong code answers {"code": ["The code is not correct. 4 tries left."]}); no answer
ever carries a code."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FileUploadParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from imali.api.base import EntityScopedMixin, query_choice, query_int
from imali.api.parsers import JSONParser
from imali.api.serializers.fields import DayField, MoneyField, StrictIntegerField
from imali.clients.models import Client
from imali.loans.models import Loan
from imali.signing import selectors, services
from imali.signing.models import (
    Enrolment,
    Mandate,
    MandateKind,
    Signature,
    SignatureMethod,
)
from imali.signing.services import Document
from imali.tenancy.models import User
from imali.tenancy.rights import Right

BAD_INPUT = OpenApiResponse(description="Bad input or a refused step: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")


# --- Serializers ---------------------------------------------------------------------------------


class OtpSetupSerializer(serializers.Serializer):
    user_otp = serializers.BooleanField(required=False)
    enrol_client = serializers.BooleanField(required=False)
    esign_loan_otp = serializers.BooleanField(required=False)
    loan_otp = serializers.BooleanField(required=False)
    threshold = MoneyField(allow_zero=True, required=False)
    code_length = StrictIntegerField(required=False)
    validity_minutes = StrictIntegerField(required=False)
    tries_per_code = StrictIntegerField(required=False)


class OtpChallengeSerializer(serializers.Serializer):
    challenge = serializers.CharField(source="public_id", help_text="Give this back with the code")
    purpose = serializers.CharField()
    cellphone = serializers.CharField()
    expires_at = serializers.DateTimeField()
    tries_left = StrictIntegerField()


class OtpCodeSerializer(serializers.Serializer):
    challenge = serializers.CharField(max_length=32)
    code = serializers.CharField(max_length=10, trim_whitespace=True)


class EnrolmentClearSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class CellphoneEnrolmentSerializer(serializers.Serializer):
    id = StrictIntegerField()
    client = StrictIntegerField(source="client_id")
    cellphone = serializers.CharField()
    is_active = serializers.BooleanField()
    enrolled_at = serializers.DateTimeField()
    cleared_at = serializers.DateTimeField(allow_null=True)
    clear_reason = serializers.CharField()


class DocumentSignatureSerializer(serializers.Serializer):
    id = StrictIntegerField()
    loan = StrictIntegerField(source="loan_id")
    mandate = StrictIntegerField(source="mandate_id", allow_null=True)
    method = serializers.CharField(help_text="otp, override or hand")
    hand_signature_required = serializers.BooleanField()
    hand_reason = serializers.CharField()
    signed_at = serializers.DateTimeField()
    client_full_names = serializers.CharField()
    client_surname = serializers.CharField()
    client_id_number = serializers.CharField()
    client_cellphone = serializers.CharField()
    signature_line = serializers.CharField()
    terms_digest = serializers.CharField()
    document_sha256 = serializers.CharField()
    authorised_by = serializers.CharField(source="authorised_by.username", allow_null=True, default=None)
    override_reason = serializers.CharField()


class SigningStateSerializer(serializers.Serializer):
    requirement = serializers.CharField(source="decision.requirement", help_text="otp_required, otp_optional, hand or not_signable")
    message = serializers.CharField(source="decision.message")
    terms_digest = serializers.SerializerMethodField()
    enrolled_cellphone = serializers.CharField(source="enrolment.cellphone", allow_null=True, default=None)
    pending = OtpChallengeSerializer(allow_null=True)
    signature = DocumentSignatureSerializer(allow_null=True)

    def get_terms_digest(self, state) -> str:
        return services.document_digest(state.document)


class SigningOverrideSerializer(serializers.Serializer):
    authoriser = serializers.CharField(max_length=150, help_text="Username of the user with the Override Loan OTP right")
    reason = serializers.CharField(max_length=200)
    password = serializers.CharField(required=False, allow_blank=True, style={"input_type": "password"})
    challenge = serializers.CharField(required=False, allow_blank=True, max_length=32)
    code = serializers.CharField(required=False, allow_blank=True, max_length=10)


class OverrideAuthoriserSerializer(serializers.Serializer):
    authoriser = serializers.CharField(max_length=150)


class DebitMandateWriteSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=MandateKind.choices)
    instalment_amount = MoneyField(required=False)
    maximum_collection = MoneyField(required=False)
    collection_day = StrictIntegerField()
    account = StrictIntegerField(help_text="Id of an active account of the loan's client")


class DebitMandateSerializer(serializers.Serializer):
    id = StrictIntegerField()
    loan = StrictIntegerField(source="loan_id")
    kind = serializers.CharField()
    contract_reference = serializers.CharField()
    instalment_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    maximum_collection = serializers.DecimalField(max_digits=14, decimal_places=2)
    collection_day = StrictIntegerField()
    account = StrictIntegerField(source="account_id")
    status = serializers.CharField(source="get_status_display")


class SignatureCheckSerializer(serializers.Serializer):
    matches = serializers.BooleanField()
    sha256 = serializers.CharField()
    signed_sha256 = serializers.CharField()


class SigningAuditRowSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    action = serializers.CharField()
    label = serializers.CharField(source="get_action_display")
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    subject = serializers.CharField()
    ip_address = serializers.CharField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


# --- Base ----------------------------------------------------------------------------------------


class SigningView(EntityScopedMixin, APIView):
    def loan(self, loan_id: int) -> Loan:
        try:
            return selectors.loan_get(entity=self.entity, pk=loan_id)
        except Loan.DoesNotExist:
            raise Http404 from None

    def mandate(self, mandate_id: int) -> Mandate:
        try:
            return selectors.mandate_get(entity=self.entity, pk=mandate_id)
        except Mandate.DoesNotExist:
            raise Http404 from None

    def document(self, kwargs) -> Document:
        if "mandate_id" in kwargs:
            mandate = self.mandate(kwargs["mandate_id"])
            return Document(loan=mandate.loan, mandate=mandate)
        return Document(loan=self.loan(kwargs["loan_id"]))

    def client_of(self, client_id: int) -> Client:
        try:
            return selectors.client_get(entity=self.entity, pk=client_id)
        except Client.DoesNotExist:
            raise Http404 from None

    def valid(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _authoriser(entity, username: str) -> User | None:
    return User.objects.filter(entity=entity, username__iexact=(username or "").strip()).first()


# --- Setup -----------------------------------------------------------------------------------------


class SetupView(SigningView):
    required_rights = {"get": Right.MAXSMS_GENERAL_SETUP, "put": Right.MAXSMS_GENERAL_SETUP}
    # JSON only, as the other settings: in a form a blank amount is "not given" and "0" or "no" a
    # guess at a boolean, so a form's threshold "" would quietly keep the old one.
    parser_classes = [JSONParser]

    @extend_schema(summary="Read the OTP setup", responses={200: OtpSetupSerializer, 403: NO_RIGHT})
    def get(self, request):
        return Response(OtpSetupSerializer(services.otp_setup_get(entity=self.entity)).data)

    @extend_schema(summary="Change the OTP setup",
                   description="eSign Loan OTP and Loan OTP may never both be on; both need Enrol Client. Code length "
                               "6–10, validity 1–10 minutes, 1–5 tries per code. Audited. Needs MAXSMS General Setup.",
                   request=OtpSetupSerializer, responses={200: OtpSetupSerializer, 400: BAD_INPUT, 403: NO_RIGHT})
    def put(self, request):
        setup = services.otp_setup_update(actor=request.user, entity=self.entity, data=self.valid(OtpSetupSerializer))
        return Response(OtpSetupSerializer(setup).data)


# --- Enrolment -------------------------------------------------------------------------------------


class EnrolmentSendView(SigningView):
    required_rights = {"post": Right.MANAGE_CLIENTS}

    @extend_schema(summary="Send an enrolment code to the client's cellphone", request=None,
                   responses={201: OtpChallengeSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, client_id: int):
        challenge = services.enrolment_send(actor=request.user, entity=self.entity, client=self.client_of(client_id),
                                            ip=self.ip_address)
        return Response(OtpChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


class EnrolmentVerifyView(SigningView):
    required_rights = {"post": Right.MANAGE_CLIENTS}

    @extend_schema(summary="Verify the enrolment code", request=OtpCodeSerializer,
                   responses={201: CellphoneEnrolmentSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, client_id: int):
        client = self.client_of(client_id)
        data = self.valid(OtpCodeSerializer)
        enrolment = services.enrolment_verify(actor=request.user, entity=self.entity, client=client,
                                              challenge_id=data["challenge"], code=data["code"], ip=self.ip_address)
        return Response(CellphoneEnrolmentSerializer(enrolment).data, status=status.HTTP_201_CREATED)


class EnrolmentClearView(SigningView):
    required_rights = {"post": (Right.MANAGE_CLIENTS, Right.CLEAR_ENROLMENT)}

    @extend_schema(summary="Clear the client's enrolled cellphone", description="Needs Clear Enrolment.",
                   request=EnrolmentClearSerializer, responses={200: CellphoneEnrolmentSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, client_id: int):
        client = self.client_of(client_id)
        enrolment = services.enrolment_clear(actor=request.user, entity=self.entity, client=client,
                                             reason=self.valid(EnrolmentClearSerializer)["reason"], ip=self.ip_address)
        return Response(CellphoneEnrolmentSerializer(enrolment).data)


class EnrolmentView(SigningView):
    required_rights = {"get": Right.VIEW_CLIENTS}
    pagination_class = None  # a client's few enrolments: a plain list, and the schema says so

    @extend_schema(summary="The client's enrolments, newest first", responses={200: CellphoneEnrolmentSerializer(many=True), 403: NO_RIGHT, 404: NOT_FOUND})
    def get(self, request, client_id: int):
        client = self.client_of(client_id)
        return Response(CellphoneEnrolmentSerializer(Enrolment.objects.filter(entity=self.entity, client=client), many=True).data)


# --- Signing a loan or a mandate -----------------------------------------------------------------


class DocumentStateView(SigningView):
    required_rights = {"get": Right.CAPTURE_LOANS}

    @extend_schema(summary="What signing this document needs, and where it stands",
                   responses={200: SigningStateSerializer, 403: NO_RIGHT, 404: NOT_FOUND})
    def get(self, request, **kwargs):
        state = selectors.signing_state(entity=self.entity, document=self.document(kwargs))
        return Response(SigningStateSerializer(state).data)


class DocumentSendView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Send (or resend) the client's code",
                   description="Bound to the terms as they are now; a new send voids the earlier code. Rate-limited "
                               "per cellphone, per user and per client address.",
                   request=None, responses={201: OtpChallengeSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, **kwargs):
        challenge = services.document_otp_send(actor=request.user, entity=self.entity, document=self.document(kwargs),
                                               ip=self.ip_address)
        return Response(OtpChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


class DocumentVerifyView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Verify the client's code: a match signs the document",
                   request=OtpCodeSerializer, responses={201: DocumentSignatureSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, **kwargs):
        document = self.document(kwargs)
        data = self.valid(OtpCodeSerializer)
        signature = services.document_otp_verify(actor=request.user, entity=self.entity, document=document,
                                                 challenge_id=data["challenge"], code=data["code"], ip=self.ip_address)
        return Response(DocumentSignatureSerializer(signature).data, status=status.HTTP_201_CREATED)


class DocumentHandView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Finish without the client's code: flagged for a hand signature",
                   description="Refused while Loan OTP is mandatory for the client (use an override).",
                   request=None, responses={201: DocumentSignatureSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, **kwargs):
        signature = services.document_hand_sign(actor=request.user, entity=self.entity, document=self.document(kwargs),
                                                ip=self.ip_address)
        return Response(DocumentSignatureSerializer(signature).data, status=status.HTTP_201_CREATED)


class OverrideSendView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Send a code to the authorising user's own cellphone, for an override",
                   request=OverrideAuthoriserSerializer, responses={201: OtpChallengeSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, **kwargs):
        document = self.document(kwargs)
        authoriser = _authoriser(self.entity, self.valid(OverrideAuthoriserSerializer)["authoriser"])
        challenge = services.override_otp_send(actor=request.user, entity=self.entity, document=document,
                                               authoriser=authoriser, ip=self.ip_address)
        return Response(OtpChallengeSerializer(challenge).data, status=status.HTTP_201_CREATED)


class OverrideView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Override the client's code (e.g. a lost phone)",
                   description="The authorising user (Override Loan OTP right) gives their own password, or the "
                               "challenge and code sent to their own cellphone, and a reason. The document is "
                               "flagged for the client's hand signature. Audited.",
                   request=SigningOverrideSerializer, responses={201: DocumentSignatureSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, **kwargs):
        document = self.document(kwargs)
        data = self.valid(SigningOverrideSerializer)
        signature = services.document_override(
            actor=request.user, entity=self.entity, document=document, authoriser=_authoriser(self.entity, data["authoriser"]),
            reason=data["reason"], password=data.get("password", ""), challenge_id=data.get("challenge", ""),
            code=data.get("code", ""), ip=self.ip_address)
        return Response(DocumentSignatureSerializer(signature).data, status=status.HTTP_201_CREATED)


class MandateCreateView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}

    @extend_schema(summary="Create a DebiCheck or SEFT mandate for the loan (then have the client sign it)",
                   request=DebitMandateWriteSerializer, responses={201: DebitMandateSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, loan_id: int):
        loan = self.loan(loan_id)
        mandate = services.mandate_create(actor=request.user, entity=self.entity, loan=loan, data=self.valid(DebitMandateWriteSerializer))
        return Response(DebitMandateSerializer(mandate).data, status=status.HTTP_201_CREATED)


# --- Signatures --------------------------------------------------------------------------------------


class SignatureView(SigningView):
    required_rights = {"get": Right.CAPTURE_LOANS}

    @extend_schema(summary="Read a signature", responses={200: DocumentSignatureSerializer, 403: NO_RIGHT, 404: NOT_FOUND})
    def get(self, request, signature_id: int):
        try:
            signature = selectors.signature_get(entity=self.entity, pk=signature_id)
        except Signature.DoesNotExist:
            raise Http404 from None
        return Response(DocumentSignatureSerializer(signature).data)


class SignaturePdfView(SigningView):
    required_rights = {"get": Right.CAPTURE_LOANS}

    @extend_schema(summary="Download the signed agreement (PDF)",
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY, 403: NO_RIGHT, 404: NOT_FOUND})
    def get(self, request, signature_id: int):
        signature = Signature.objects.filter(entity=self.entity, pk=signature_id).only("id", "document_pdf").first()
        if signature is None:
            raise Http404
        return HttpResponse(bytes(signature.document_pdf), content_type="application/pdf")


MAX_CHECKED_DOCUMENT_BYTES = 20 * 1024 * 1024


class SignatureCheckView(SigningView):
    required_rights = {"post": Right.CAPTURE_LOANS}
    parser_classes = [MultiPartParser, FileUploadParser]

    @extend_schema(summary="Is this PDF the signed document?",
                   description="Upload the PDF (multipart field 'document'): its SHA-256 is compared with the one kept "
                               "with the signature. Audited.",
                   request={"multipart/form-data": {"type": "object", "properties": {"document": {"type": "string", "format": "binary"}}}},
                   responses={200: SignatureCheckSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND})
    def post(self, request, signature_id: int):
        signature = Signature.objects.filter(entity=self.entity, pk=signature_id).defer("document_pdf").first()
        if signature is None:
            raise Http404
        upload = request.data.get("document") or request.data.get("file")
        if not hasattr(upload, "read"):  # absent, or sent as a text field rather than a file
            return Response({"document": ["Upload the PDF to check, as a file."]}, status=status.HTTP_400_BAD_REQUEST)
        if upload.size > MAX_CHECKED_DOCUMENT_BYTES:  # read whole below: no agreement is near this
            return Response({"document": [f"The file is larger than {MAX_CHECKED_DOCUMENT_BYTES // (1024 * 1024)} MB: "
                                          "not a signed agreement."]}, status=status.HTTP_400_BAD_REQUEST)
        data = upload.read()
        matches = services.signature_document_check(actor=request.user, entity=self.entity, signature=signature,
                                                    data=data, ip=self.ip_address)
        from imali.signing.security import document_sha256

        return Response({"matches": matches, "sha256": document_sha256(data), "signed_sha256": signature.document_sha256})


# --- Reports ---------------------------------------------------------------------------------------

DATE_PARAMS = [OpenApiParameter("date_from", OpenApiTypes.DATE), OpenApiParameter("date_to", OpenApiTypes.DATE)]


def _dates(request) -> dict:
    field = DayField()  # 0001-01-01's local midnight overflowed (a 500)
    found = {}
    for name in ("date_from", "date_to"):
        raw = request.query_params.get(name)
        if raw is not None:  # "" is no date either: a 400, as the schema (format date) says
            try:
                found[name] = field.to_internal_value(raw)
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({name: exc.detail}) from None
    return found


class ContractsIssuedView(SigningView):
    required_rights = {"get": Right.REPORT_CONTRACTS_ISSUED}

    @extend_schema(summary="Contracts issued: every signing, by method, user, branch and dates",
                   parameters=[*DATE_PARAMS, OpenApiParameter("method", str, enum=SignatureMethod.values,
                                                                description="otp, override or hand"),
                               OpenApiParameter("user", int), OpenApiParameter("branch", int)],
                   responses={200: DocumentSignatureSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT})
    def get(self, request):
        # Any other method matched nothing, and a NUL in it was a 500 on PostgreSQL: one of the methods or a 400.
        method = query_choice(request, "method", SignatureMethod.values) or ""
        rows = selectors.contracts_issued(entity=self.entity, **_dates(request), method=method,
                                          user_id=query_int(request, "user"), branch_id=query_int(request, "branch"))
        page = self.paginator.paginate_queryset(rows, request, view=self)
        return self.paginator.get_paginated_response(DocumentSignatureSerializer(page, many=True).data)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            self._paginator = self.pagination_class()
        return self._paginator


class OtpAuditView(ContractsIssuedView):
    @extend_schema(summary="The loan OTP audit: sends, resends, wrong codes, verifications, overrides, hand signatures",
                   parameters=DATE_PARAMS, responses={200: SigningAuditRowSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT})
    def get(self, request):
        rows = selectors.otp_audit(entity=self.entity, **_dates(request))
        page = self.paginator.paginate_queryset(rows, request, view=self)
        return self.paginator.get_paginated_response(SigningAuditRowSerializer(page, many=True).data)


class LoginDetailView(ContractsIssuedView):
    required_rights = {"get": Right.REPORT_LOGIN_DETAIL}

    @extend_schema(summary="Login Detail: sign-ins with their sign-in codes", parameters=DATE_PARAMS,
                   responses={200: SigningAuditRowSerializer(many=True), 400: BAD_INPUT, 403: NO_RIGHT})
    def get(self, request):
        rows = selectors.login_detail(entity=self.entity, **_dates(request))
        page = self.paginator.paginate_queryset(rows, request, view=self)
        return self.paginator.get_paginated_response(SigningAuditRowSerializer(page, many=True).data)


def _document_routes(prefix: str, kwarg: str, name: str) -> list:
    return [
        path(f"{prefix}/<int:{kwarg}>/signing/", DocumentStateView.as_view(), name=f"{name}_signing"),
        path(f"{prefix}/<int:{kwarg}>/signing/send/", DocumentSendView.as_view(), name=f"{name}_signing_send"),
        path(f"{prefix}/<int:{kwarg}>/signing/verify/", DocumentVerifyView.as_view(), name=f"{name}_signing_verify"),
        path(f"{prefix}/<int:{kwarg}>/signing/hand/", DocumentHandView.as_view(), name=f"{name}_signing_hand"),
        path(f"{prefix}/<int:{kwarg}>/signing/override/", OverrideView.as_view(), name=f"{name}_signing_override"),
        path(f"{prefix}/<int:{kwarg}>/signing/override/send/", OverrideSendView.as_view(), name=f"{name}_signing_override_send"),
    ]


urlpatterns = [
    path("signing/setup/", SetupView.as_view(), name="signing_setup"),
    path("signing/clients/<int:client_id>/enrolments/", EnrolmentView.as_view(), name="signing_enrolments"),
    path("signing/clients/<int:client_id>/enrolment/send/", EnrolmentSendView.as_view(), name="signing_enrolment_send"),
    path("signing/clients/<int:client_id>/enrolment/verify/", EnrolmentVerifyView.as_view(), name="signing_enrolment_verify"),
    path("signing/clients/<int:client_id>/enrolment/clear/", EnrolmentClearView.as_view(), name="signing_enrolment_clear"),
    *_document_routes("signing/loans", "loan_id", "loan"),
    path("signing/loans/<int:loan_id>/mandates/", MandateCreateView.as_view(), name="signing_mandate_create"),
    *_document_routes("signing/mandates", "mandate_id", "mandate"),
    path("signing/signatures/<int:signature_id>/", SignatureView.as_view(), name="signing_signature"),
    path("signing/signatures/<int:signature_id>/agreement.pdf", SignaturePdfView.as_view(), name="signing_signature_pdf"),
    path("signing/signatures/<int:signature_id>/check/", SignatureCheckView.as_view(), name="signing_signature_check"),
    path("signing/reports/contracts/", ContractsIssuedView.as_view(), name="signing_contracts"),
    path("signing/reports/otp-audit/", OtpAuditView.as_view(), name="signing_otp_audit"),
    path("signing/reports/logins/", LoginDetailView.as_view(), name="signing_login_detail"),
]
