"""The audit log: append-only. Rows are inserted, never updated or deleted (also by a trigger)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    LOGIN_SUCCEEDED = "login.succeeded", "Login succeeded"
    LOGIN_FAILED = "login.failed", "Login failed"
    LOGIN_LOCKED = "login.locked", "Login refused: locked out"
    LOGOUT = "logout", "Logout"
    ENTITY_CREATED = "entity.created", "Entity created"
    ENTITY_UPDATED = "entity.updated", "Entity updated"
    BRANCH_CREATED = "branch.created", "Branch created"
    BRANCH_UPDATED = "branch.updated", "Branch updated"
    REGION_CREATED = "region.created", "Region created"
    USER_CREATED = "user.created", "User created"
    USER_UPDATED = "user.updated", "User updated"
    USER_ROLES_CHANGED = "user.roles_changed", "User roles changed"
    ROLE_CREATED = "role.created", "Role created"
    ROLE_RIGHTS_CHANGED = "role.rights_changed", "Role rights changed"
    ROLE_DELETED = "role.deleted", "Role deleted"
    API_TOKEN_ISSUED = "api.token_issued", "API token issued"
    CLIENT_CREATED = "client.created", "Client created"
    CLIENT_UPDATED = "client.updated", "Client updated"
    CLIENT_CONSENT_CHANGED = "client.consent_changed", "Marketing consent changed"
    CLIENT_ACCOUNT_ADDED = "client.account_added", "Client account added"
    CLIENT_NOTE_ADDED = "client.note_added", "Client note added"
    EMPLOYER_CREATED = "employer.created", "Employer created"
    EMPLOYER_UPDATED = "employer.updated", "Employer updated"
    PAYPOINT_CREATED = "paypoint.created", "Paypoint created"
    CREDITS_ASSIGNED = "credits.assigned", "Credits assigned by the operator"
    CREDIT_SETTINGS_CHANGED = "credits.settings_changed", "Credit settings changed"
    TEMPLATE_UPDATED = "template.updated", "Message template updated"
    MESSAGE_QUEUED = "message.queued", "Message queued"
    BULK_SEND_QUEUED = "message.bulk_queued", "Bulk send queued"
    MARKETING_OPTED_OUT = "client.marketing_opted_out", "Marketing opt-out (STOP)"
    GATEWAY_CHANGED = "gateway.changed", "SMS gateway or route changed"
    LOAN_PRODUCT_CREATED = "loan_product.created", "Loan product created"
    LOAN_PRODUCT_UPDATED = "loan_product.updated", "Loan product updated"
    LOAN_APPLIED = "loan.applied", "Loan application captured"
    LOAN_APPROVED = "loan.approved", "Loan approved"
    LOAN_DISBURSED = "loan.disbursed", "Loan disbursed"
    LOAN_CANCELLED = "loan.cancelled", "Loan cancelled"
    LOAN_WRITTEN_OFF = "loan.written_off", "Loan written off"
    LOAN_HANDED_OVER = "loan.handed_over", "Loan handed over"
    RECEIPT_POSTED = "receipt.posted", "Receipt posted"
    RECEIPT_REVERSED = "receipt.reversed", "Receipt reversed"
    NON_LOAN_DEBIT_ADDED = "non_loan_debit.added", "Non-loan debit added"
    NON_LOAN_DEBIT_SETTLED = "non_loan_debit.settled", "Non-loan debit settled"
    DAILY_CLOSE_RUN = "loans.daily_close", "Loan book daily close"
    OTP_SETUP_CHANGED = "signing.setup_changed", "OTP setup changed"
    OTP_SENT = "signing.otp_sent", "OTP sent"
    OTP_RESENT = "signing.otp_resent", "OTP resent (earlier code void)"
    OTP_VERIFIED = "signing.otp_verified", "OTP verified"
    OTP_FAILED = "signing.otp_failed", "OTP wrong"
    OTP_EXHAUSTED = "signing.otp_exhausted", "OTP void after too many wrong tries"
    OTP_EXPIRED = "signing.otp_expired", "OTP expired"
    OTP_VOIDED = "signing.otp_voided", "OTP void"
    OTP_RATE_LIMITED = "signing.otp_rate_limited", "OTP refused: rate limit"
    ENROLMENT_CREATED = "signing.enrolled", "Cellphone enrolled"
    ENROLMENT_CLEARED = "signing.enrolment_cleared", "Cellphone enrolment cleared"
    SIGNED_WITH_OTP = "signing.signed_otp", "Signed electronically with OTP"
    SIGNED_BY_HAND = "signing.signed_hand", "Flagged for a hand signature"
    SIGNING_OVERRIDDEN = "signing.overridden", "OTP overridden (hand signature)"
    OVERRIDE_REFUSED = "signing.override_refused", "OTP override refused"
    MANDATE_CREATED = "signing.mandate_created", "Debit mandate created"
    DOCUMENT_CHECKED = "signing.document_checked", "Signed document checked"
    LOGIN_OTP_SENT = "login.otp_sent", "Login OTP sent"
    LOGIN_OTP_VERIFIED = "login.otp_verified", "Login OTP verified"
    LOGIN_OTP_FAILED = "login.otp_failed", "Login OTP wrong"
    DATA_GENERATED = "data.generated", "Demo or scale data generated"
    USER_PASSWORD_SET = "user.password_set", "User password set"
    REGION_UPDATED = "region.updated", "Region updated"
    PAYPOINT_UPDATED = "paypoint.updated", "Paypoint updated"
    CHANGE_REFUNDED = "change.refunded", "Change paid back to the client"
    CHANGE_REFUND_REVERSED = "change.refund_reversed", "Change refund reversed"
    REPORT_EXPORTED = "report.exported", "Report exported"
    # Client marketing (imali.marketing).
    MARKETING_DATASET_RUN = "marketing.dataset_run", "Client marketing data set run"
    MARKETING_MESSAGE_SAVED = "marketing.message_saved", "Marketing custom message saved"
    MARKETING_SENT = "marketing.sent", "Client marketing message sent"
    AUTOMATIC_SMS_CHANGED = "reminders.automatic_changed", "Automatic SMS setup changed"
    MIS_SMS_CHANGED = "reminders.mis_changed", "MIS SMS setup changed"
    DAILY_SMS_RUN = "reminders.run", "Automatic or MIS SMS run for a day"
    MESSAGE_TYPE_SWITCHED = "messaging.type_switched", "SMS type switched on or off"
    REPLY_NOTIFY_CHANGED = "messaging.reply_notify_changed", "Reply notification setup changed"
    REPLIES_COLLECTED = "messaging.replies_collected", "SMS replies collected"
    # SMS banking (imali.smsbanking).
    SMS_BANKING_SETTINGS_CHANGED = "smsbanking.settings_changed", "SMS banking settings changed"
    SMS_KEYWORD_CHANGED = "smsbanking.keyword_changed", "SMS banking keyword alias changed"
    SMS_PIN_SET = "smsbanking.pin_set", "SMS banking PIN set"
    SMS_PIN_FAILED = "smsbanking.pin_failed", "SMS banking PIN wrong"
    SMS_PIN_LOCKED = "smsbanking.pin_locked", "SMS banking PIN locked after wrong tries"
    SMS_MARKETING_STARTED = "smsbanking.marketing_started", "Marketing allowed again (START)"
    FIELD_COLLECTION_RECORDED = "smsbanking.collection_recorded", "Field collection recorded (unverified)"
    FIELD_COLLECTION_CONFIRMED = "smsbanking.collection_confirmed", "Field collection confirmed at the branch"
    FIELD_COLLECTION_REJECTED = "smsbanking.collection_rejected", "Field collection rejected at the branch"
    COLLECTION_SHEET_ISSUED = "smsbanking.sheet_issued", "Collection sheet printed with a code"
    PAYMENT_PROVIDER_CHANGED = "smsbanking.provider_changed", "Mobile-money provider changed"
    PROVIDER_PAYMENT_RECORDED = "smsbanking.provider_payment", "Mobile-money SMS payment recorded"
    PROVIDER_PAYMENT_CONFIRMED = "smsbanking.provider_payment_confirmed", "Mobile-money SMS payment confirmed at the branch"
    PROVIDER_PAYMENT_REJECTED = "smsbanking.provider_payment_rejected", "Mobile-money SMS payment rejected at the branch"
    MOBILE_MONEY_SETUP_CHANGED = "mobilemoney.setup_changed", "Mobile-money provider setup changed"
    MOBILE_MONEY_URLS_REGISTERED = "mobilemoney.urls_registered", "Mobile-money callback URLs registered"
    GATEWAY_DESTINATION_REFUSED = "messaging.gateway_destination_refused", "SMS gateway address refused: not connected"
    MOBILE_MONEY_DESTINATION_REFUSED = "mobilemoney.destination_refused", "Mobile-money provider address refused: nothing sent"
    MOBILE_PAYMENT_RECEIVED = "mobilemoney.payment_received", "Mobile-money payment received"
    MOBILE_PAYMENT_ALLOCATED = "mobilemoney.payment_allocated", "Mobile-money payment allocated from suspense"
    MOBILE_STATEMENT_IMPORTED = "mobilemoney.statement_imported", "Mobile-money statement imported"
    MOBILE_STATEMENT_UPLOADED = "mobilemoney.statement_uploaded", "Mobile-money statement uploaded for preview"
    MOBILE_STATEMENT_CONFIRMED = "mobilemoney.statement_confirmed", "Mobile-money statement import started"
    MOBILE_COLLECTION_REQUESTED = "mobilemoney.collection_requested", "Mobile-money payment requested (MoMo)"
    MOBILE_DISBURSEMENT_MARKED = "mobilemoney.disbursement_marked", "Mobile disbursement: payment pending"
    MOBILE_DISBURSEMENT_BATCH = "mobilemoney.disbursement_batch", "Mobile payments consolidated"
    MOBILE_DISBURSEMENT_APPROVED = "mobilemoney.disbursement_approved", "Mobile payments approved"
    MOBILE_DISBURSEMENT_SENT = "mobilemoney.disbursement_sent", "Mobile payment sent"
    MOBILE_DISBURSEMENT_RESULT = "mobilemoney.disbursement_result", "Mobile payment result"
    MOBILE_DISBURSEMENT_CANCELLED = "mobilemoney.disbursement_cancelled", "Mobile disbursement cancelled"
    # Payment stream (imali.paystream).
    PAYSTREAM_SETTINGS_CHANGED = "paystream.settings_changed", "Payment-stream settings changed"
    PAYSTREAM_EMPLOYER_ADDED = "paystream.employer_added", "Employer registered at the payment stream"
    PAYSTREAM_CLIENT_ADDED = "paystream.client_added", "Client registered at the payment stream"
    PAYSTREAM_ACCOUNT_ADDED = "paystream.account_added", "Client account registered at the payment stream"
    PAYSTREAM_NOTE_CREATED = "paystream.note_created", "Promissory note created"
    PAYSTREAM_NOTE_CANCELLED = "paystream.note_cancelled", "Promissory note cancelled"
    PAYSTREAM_INSTALMENT_EDITED = "paystream.instalment_edited", "Promissory note instalment changed"
    PAYSTREAM_DOCUMENT_PRINTED = "paystream.document_printed", "Payment-stream document printed"
    PAYSTREAM_PAYMENT_REQUESTED = "paystream.payment_requested", "Credit payment requested"
    PAYSTREAM_PAYMENT_ACCEPTED = "paystream.payment_accepted", "Credit payment accepted by the stream"
    PAYSTREAM_PAYMENT_REJECTED = "paystream.payment_rejected", "Credit payment rejected by the stream"
    PAYSTREAM_WALLET_REQUESTED = "paystream.wallet_requested", "Wallet requested"
    PAYSTREAM_WALLET_UPDATED = "paystream.wallet_updated", "Wallet created or failed"
    PAYSTREAM_COLLECTIONS_IMPORTED = "paystream.collections_imported", "Collection results imported"
    PAYSTREAM_MANDATE_CREATED = "paystream.mandate_created", "DebiCheck mandate created"
    PAYSTREAM_MANDATE_SENT = "paystream.mandate_sent", "DebiCheck mandate sent to the bank for authentication"
    PAYSTREAM_MANDATE_DECIDED = "paystream.mandate_decided", "DebiCheck mandate approved, rejected or timed out"
    PAYSTREAM_MANDATE_AMENDED = "paystream.mandate_amended", "DebiCheck mandate amendment requested"
    PAYSTREAM_MANDATE_CANCELLED = "paystream.mandate_cancelled", "DebiCheck mandate cancelled"
    PAYSTREAM_STATUS_ASKED = "paystream.status_asked", "Payment stream asked for a status by a person"


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):  # noqa: D401 - a guard, not an operation
        raise PermissionError("The audit log is append-only.")

    def delete(self):
        raise PermissionError("The audit log is append-only.")


class AuditEntry(models.Model):
    entity = models.ForeignKey(
        "tenancy.Entity", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # No `choices` on the column: apps add actions to AuditAction without a migration each time.
    action = models.CharField(max_length=64)
    # What the entry is about, e.g. "clients.Client"/"42", or the username of a failed login.
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    subject = models.CharField(max_length=150, blank=True, help_text="Username, number or name")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["entity", "created_at"]),
            models.Index(fields=["action", "subject", "created_at"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only.")

    def get_action_display(self) -> str:
        try:
            return AuditAction(self.action).label
        except ValueError:
            return self.action
