"""OTP setups, cellphone enrolments, OTP challenges, debit mandates, signatures and rate buckets.

No code is ever stored: a challenge keeps only the keyed hash (see security.py)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from .security import MAX_CODE_LENGTH, MIN_CODE_LENGTH

MONEY = {"max_digits": 14, "decimal_places": 2}
MAX_VALIDITY_MINUTES = 10
MAX_TRIES_PER_CODE = 5


class OtpSetup(models.Model):
    """The OTP switches of one entity (DOMAIN §3)."""

    entity = models.OneToOneField("tenancy.Entity", on_delete=models.CASCADE, related_name="otp_setup")
    user_otp = models.BooleanField("User OTP (OTP at login)", default=False)
    enrol_client = models.BooleanField("Enrol Client", default=False)
    esign_loan_otp = models.BooleanField("eSign Loan OTP (optional OTP)", default=False)
    loan_otp = models.BooleanField("Loan OTP (mandatory for enrolled clients)", default=False)
    threshold = models.DecimalField("Loan OTP amount", **MONEY, default=Decimal("0.00"),
                                    help_text="Loans at or above this amount need the OTP")
    code_length = models.PositiveSmallIntegerField(default=MIN_CODE_LENGTH)
    validity_minutes = models.PositiveSmallIntegerField(default=5)
    tries_per_code = models.PositiveSmallIntegerField(default=MAX_TRIES_PER_CODE)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(esign_loan_otp=True, loan_otp=True), name="otp_setup_esign_or_loan_otp"),
            models.CheckConstraint(condition=Q(loan_otp=False) | Q(enrol_client=True), name="otp_setup_loan_otp_needs_enrol"),
            models.CheckConstraint(condition=Q(esign_loan_otp=False) | Q(enrol_client=True), name="otp_setup_esign_needs_enrol"),
            models.CheckConstraint(condition=Q(code_length__gte=MIN_CODE_LENGTH, code_length__lte=MAX_CODE_LENGTH), name="otp_setup_code_length"),
            models.CheckConstraint(condition=Q(validity_minutes__gte=1, validity_minutes__lte=MAX_VALIDITY_MINUTES), name="otp_setup_validity"),
            models.CheckConstraint(condition=Q(tries_per_code__gte=1, tries_per_code__lte=MAX_TRIES_PER_CODE), name="otp_setup_tries"),
            models.CheckConstraint(condition=Q(threshold__gte=0), name="otp_setup_threshold"),
        ]

    def __str__(self) -> str:
        return f"OTP setup of {self.entity_id}"


class Enrolment(models.Model):
    """A client's cellphone, proven by an OTP. One active enrolment per number and per client."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="enrolments")
    cellphone = models.CharField(max_length=16)
    is_active = models.BooleanField(default=True)
    challenge = models.OneToOneField("signing.Challenge", null=True, blank=True, on_delete=models.PROTECT, related_name="enrolment")
    enrolled_at = models.DateTimeField()
    enrolled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    clear_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-enrolled_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "cellphone"], condition=Q(is_active=True),
                                    name="enrolment_one_borrower_per_cellphone"),
            models.UniqueConstraint(fields=["entity", "client"], condition=Q(is_active=True),
                                    name="enrolment_one_active_per_client"),
        ]

    def __str__(self) -> str:
        return f"{self.cellphone} → client {self.client_id}"


class Purpose(models.TextChoices):
    ENROL = "enrol", "Cellphone enrolment"
    LOAN = "loan", "Loan agreement"
    MANDATE = "mandate", "Debit mandate"
    LOGIN = "login", "Sign-in"
    OVERRIDE = "override", "Override authorisation"


class ChallengeStatus(models.TextChoices):
    PENDING = "pending", "Sent, waiting for the code"
    VERIFIED = "verified", "Verified"
    VOIDED = "voided", "Void"
    EXHAUSTED = "exhausted", "Void: too many wrong codes"
    EXPIRED = "expired", "Expired"


def _public_id() -> str:
    return uuid.uuid4().hex


class Challenge(models.Model):
    """One code sent to one cellphone for one purpose. `subject_key` names what the code is for
    (e.g. "loan:42"); at most one pending challenge per subject, so a new send voids the old."""

    public_id = models.CharField(max_length=32, unique=True, default=_public_id, editable=False)
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    subject_key = models.CharField(max_length=80)
    client = models.ForeignKey("clients.Client", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             help_text="The user whose own cellphone received the code (sign-in, override)")
    loan = models.ForeignKey("loans.Loan", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mandate = models.ForeignKey("signing.Mandate", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cellphone = models.CharField(max_length=16)
    code_hash = models.CharField(max_length=64)
    terms_digest = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=ChallengeStatus.choices, default=ChallengeStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=40, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    outbox_message = models.ForeignKey("messaging.OutboxMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "subject_key"], condition=Q(status="pending"),
                                    name="challenge_one_pending_per_subject"),
            models.CheckConstraint(condition=Q(attempts__lte=F("max_attempts")), name="challenge_attempts_within_max"),
        ]
        indexes = [models.Index(fields=["entity", "purpose", "created_at"], name="challenge_entity_purpose")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} OTP {self.public_id[:8]} ({self.status})"

    def hash_context(self) -> str:
        # Binds the code to this challenge and to the terms it was sent for.
        return f"{self.public_id}|{self.purpose}|{self.subject_key}|{self.terms_digest}"

    @property
    def tries_left(self) -> int:
        return max(self.max_attempts - self.attempts, 0)


class MandateKind(models.TextChoices):
    DEBICHECK = "debicheck", "DebiCheck"
    SEFT = "seft", "SEFT (EFT debit order)"


class MandateStatus(models.TextChoices):
    AWAITING_SIGNATURE = "awaiting", "Awaiting signature"
    SIGNED = "signed", "Signed with OTP"
    HAND_SIGNATURE = "hand", "To be signed by hand"
    CANCELLED = "cancelled", "Cancelled"


class Mandate(models.Model):
    """A debit mandate for an existing loan, signed again by the client (minimal: the
    payment-stream work adds what the collection itself needs)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="mandates")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="mandates")
    kind = models.CharField(max_length=10, choices=MandateKind.choices)
    contract_reference = models.CharField(max_length=30)
    instalment_amount = models.DecimalField(**MONEY)
    maximum_collection = models.DecimalField(**MONEY)
    collection_day = models.PositiveSmallIntegerField()
    account = models.ForeignKey("clients.ClientAccount", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=MandateStatus.choices, default=MandateStatus.AWAITING_SIGNATURE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A contract reference is never reused, also after a cancel (DOMAIN §7).
            models.UniqueConstraint(fields=["entity", "contract_reference"], name="mandate_reference_once"),
            models.CheckConstraint(condition=Q(instalment_amount__gt=0), name="mandate_instalment_positive"),
            models.CheckConstraint(condition=Q(maximum_collection__gte=F("instalment_amount"))
                                   & Q(maximum_collection__lte=F("instalment_amount") * Decimal("1.5")),
                                   name="mandate_maximum_collection_range"),
            models.CheckConstraint(condition=(Q(collection_day__gte=1) & Q(collection_day__lte=30)) | Q(collection_day=99),
                                   name="mandate_collection_day"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} mandate {self.contract_reference}"


class SignatureMethod(models.TextChoices):
    OTP = "otp", "OTP verified"
    OVERRIDE = "override", "Overridden"
    HAND = "hand", "Hand-signed"


class HandReason(models.TextChoices):
    OTP_OFF = "otp_off", "Loan OTP is switched off"
    BELOW_THRESHOLD = "below_threshold", "Below the Loan OTP amount"
    NOT_ENROLLED = "not_enrolled", "Cellphone not enrolled"
    OTP_DECLINED = "otp_declined", "eSign OTP not used"
    OVERRIDE = "override", "OTP overridden"


class OverrideAuth(models.TextChoices):
    PASSWORD = "password", "Own password"
    OTP = "otp", "Own OTP"


class Signature(models.Model):
    """How a loan agreement or a mandate was signed: electronically with the client's OTP, or
    flagged for the client's hand signature (not enrolled, optional OTP not used, override)."""

    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="+")
    branch = models.ForeignKey("tenancy.Branch", on_delete=models.PROTECT, related_name="+")
    loan = models.ForeignKey("loans.Loan", on_delete=models.PROTECT, related_name="signatures")
    mandate = models.OneToOneField(Mandate, null=True, blank=True, on_delete=models.PROTECT, related_name="signature")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=10, choices=SignatureMethod.choices)
    hand_signature_required = models.BooleanField(default=False)
    hand_reason = models.CharField(max_length=16, choices=HandReason.choices, blank=True)
    signed_at = models.DateTimeField()
    client_full_names = models.CharField(max_length=120)
    client_surname = models.CharField(max_length=80)
    client_id_number = models.CharField(max_length=20)
    client_cellphone = models.CharField(max_length=16, blank=True)
    challenge = models.OneToOneField(Challenge, null=True, blank=True, on_delete=models.PROTECT, related_name="signature")
    terms_digest = models.CharField(max_length=64)
    signature_line = models.TextField()
    document_sha256 = models.CharField(max_length=64)
    document_pdf = models.BinaryField()
    administered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    authorised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    override_auth = models.CharField(max_length=10, choices=OverrideAuth.choices, blank=True)
    override_reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-signed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["loan"], condition=Q(mandate__isnull=True), name="signature_one_per_loan"),
            models.CheckConstraint(
                condition=(Q(method="otp", challenge__isnull=False, hand_signature_required=False))
                | (Q(method="override", hand_signature_required=True) & ~Q(override_reason="") & Q(authorised_by__isnull=False))
                | Q(method="hand", hand_signature_required=True, challenge__isnull=True),
                name="signature_method_consistent",
            ),
        ]
        indexes = [models.Index(fields=["entity", "signed_at"], name="signature_entity_signed")]

    def __str__(self) -> str:
        what = f"mandate {self.mandate_id}" if self.mandate_id else f"loan {self.loan_id}"
        return f"Signature of {what} ({self.get_method_display()})"


class RateBucket(models.Model):
    """A fixed-window counter per key ("send:phone:+27…"), updated under a row lock so the limit
    holds across processes and machines."""

    key = models.CharField(max_length=120, unique=True)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
