"""Reads of OTP signing, scoped to an entity: the signing state of a document, the Contracts
issued report, the loan OTP audit and the Login Detail report."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.db.models import CharField, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from imali.loans.models import Loan
from imali.tenancy.models import Entity

from .models import Challenge, ChallengeStatus, Enrolment, Mandate, Signature
from .rules import AGREEMENT_SIGNABLE_STATUSES, Decision
from .services import Document, document_decision, enrolment_active

SIGNING_AUDIT_ACTIONS = (
    AuditAction.OTP_SENT, AuditAction.OTP_RESENT, AuditAction.OTP_VERIFIED, AuditAction.OTP_FAILED,
    AuditAction.OTP_EXHAUSTED, AuditAction.OTP_EXPIRED, AuditAction.OTP_VOIDED, AuditAction.OTP_RATE_LIMITED,
    AuditAction.ENROLMENT_CREATED, AuditAction.ENROLMENT_CLEARED, AuditAction.SIGNED_WITH_OTP,
    AuditAction.SIGNED_BY_HAND, AuditAction.SIGNING_OVERRIDDEN, AuditAction.OVERRIDE_REFUSED,
    AuditAction.MANDATE_CREATED, AuditAction.DOCUMENT_CHECKED,
)
LOGIN_AUDIT_ACTIONS = (
    AuditAction.LOGIN_SUCCEEDED, AuditAction.LOGIN_FAILED, AuditAction.LOGIN_LOCKED, AuditAction.LOGOUT,
    AuditAction.LOGIN_OTP_SENT, AuditAction.LOGIN_OTP_VERIFIED, AuditAction.LOGIN_OTP_FAILED,
)


def loan_get(*, entity: Entity, pk: int) -> Loan:
    return Loan.objects.select_related("client", "client__branch", "created_by").get(entity=entity, pk=pk)


def mandate_get(*, entity: Entity, pk: int) -> Mandate:
    return Mandate.objects.select_related("loan", "loan__client", "loan__client__branch", "loan__created_by",
                                          "account").get(entity=entity, pk=pk)


def signature_get(*, entity: Entity, pk: int) -> Signature:
    return Signature.objects.select_related("client", "loan", "mandate", "authorised_by", "administered_by",
                                            "created_by", "branch").defer("document_pdf").get(entity=entity, pk=pk)


def client_get(*, entity: Entity, pk: int) -> Client:
    return Client.objects.select_related("branch").get(entity=entity, pk=pk)


@dataclass(frozen=True)
class SigningState:
    document: Document
    decision: Decision
    enrolment: Enrolment | None
    signature: Signature | None
    pending: Challenge | None


def signing_state(*, entity: Entity, document: Document) -> SigningState:
    if document.mandate is not None:
        signature = Signature.objects.filter(mandate=document.mandate).defer("document_pdf").first()
    else:
        signature = Signature.objects.filter(loan=document.loan, mandate__isnull=True).defer("document_pdf").first()
    pending = Challenge.objects.filter(entity=entity, subject_key=document.key, status=ChallengeStatus.PENDING).first()
    return SigningState(document=document, decision=document_decision(entity=entity, document=document),
                        enrolment=enrolment_active(entity=entity, client=document.loan.client),
                        signature=signature, pending=pending)


def agreement_signature(*, entity: Entity, loan: Loan) -> Signature | None:
    """The loan agreement's signature (not a mandate's), without its PDF, or None."""
    return (Signature.objects.filter(entity=entity, loan=loan, mandate__isnull=True).defer("document_pdf")
            .select_related("authorised_by", "administered_by").first())


def loan_ready_for_disbursement(*, entity: Entity, loan: Loan) -> tuple[bool, str]:
    """Whether the loan's agreement is signed (by OTP, or flagged for a hand signature), for the
    loan book's final step; with the reason when it is not."""
    state = signing_state(entity=entity, document=Document(loan=loan))
    if state.signature is not None:
        return True, ""
    return False, f"The loan agreement is not signed yet. {state.decision.message}"


def loans_awaiting_signature(*, entity: Entity, limit: int = 200) -> list[Loan]:
    """Loans whose agreement can still be signed and is not: an application or an approved loan
    not yet paid out. A paid-out loan's agreement was signed on paper or by OTP before payout;
    signing it now would bind nothing (document_decision refuses it too)."""
    signed = Signature.objects.filter(loan=OuterRef("pk"), mandate__isnull=True)
    return list(Loan.objects.filter(entity=entity, status__in=AGREEMENT_SIGNABLE_STATUSES, disbursed_on__isnull=True)
                .exclude(Exists(signed)).select_related("client").order_by("-id")[:limit])


# What a client's history shows from the signing and messaging records beside the client's own.
CLIENT_HISTORY_ACTIONS = (
    AuditAction.ENROLMENT_CREATED, AuditAction.ENROLMENT_CLEARED, AuditAction.SIGNED_WITH_OTP,
    AuditAction.SIGNED_BY_HAND, AuditAction.SIGNING_OVERRIDDEN, AuditAction.MARKETING_OPTED_OUT,
)


def client_history(*, entity: Entity, client: Client, limit: int = 100) -> list[AuditEntry]:
    """The client's audit history, newest first: the client's own entries, and the enrolments of
    its cellphone, the signings of its loans and mandates, and a STOP from its cellphone."""
    from imali.messaging.models import MarketingOptOut

    def keys(model, **filters):
        # AuditEntry.object_id is text: the related rows' keys as text, read in the same query.
        return (model.objects.filter(entity=entity, **filters)
                .annotate(key=Cast("pk", output_field=CharField())).values("key"))

    related = Q(object_type=Client._meta.label, object_id=str(client.pk))
    for model, filters in ((Enrolment, {"client": client}), (Signature, {"client": client}),
                           (MarketingOptOut, {"number": client.cellphone} if client.cellphone else None)):
        if filters is not None:
            related |= Q(object_type=model._meta.label, object_id__in=keys(model, **filters),
                         action__in=CLIENT_HISTORY_ACTIONS)
    return list(AuditEntry.objects.filter(related, entity=entity).select_related("actor")
                .order_by("-created_at", "-id")[:limit])


@dataclass(frozen=True)
class MarketingStanding:
    consent: bool
    opted_out_at: dt.datetime | None  # when the client's cellphone answered STOP, if it did


def client_marketing(*, entity: Entity, client: Client) -> MarketingStanding:
    from imali.messaging.models import MarketingOptOut

    optout = (MarketingOptOut.objects.filter(entity=entity, number=client.cellphone).only("created_at").first()
              if client.cellphone else None)
    return MarketingStanding(consent=client.marketing_consent, opted_out_at=optout.created_at if optout else None)


def _local_bounds(entity: Entity, date_from: dt.date | None, date_to: dt.date | None):
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz) if date_from else None
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz) if date_to else None
    return start, end


def contracts_issued(*, entity: Entity, date_from: dt.date | None = None, date_to: dt.date | None = None,
                     method: str = "", user_id: int | None = None, branch_id: int | None = None) -> QuerySet[Signature]:
    """Every signing (OTP verified, overridden, hand-signed), by user, branch and dates (local days)."""
    qs = Signature.objects.filter(entity=entity).defer("document_pdf").select_related(
        "client", "branch", "created_by", "authorised_by", "mandate")
    start, end = _local_bounds(entity, date_from, date_to)
    if start:
        qs = qs.filter(signed_at__gte=start)
    if end:
        qs = qs.filter(signed_at__lt=end)
    if method:
        qs = qs.filter(method=method)
    if user_id:
        qs = qs.filter(created_by_id=user_id)
    if branch_id:
        qs = qs.filter(branch_id=branch_id)
    return qs.order_by("-signed_at", "-id")


def otp_audit(*, entity: Entity, date_from: dt.date | None = None, date_to: dt.date | None = None,
              actions: tuple[str, ...] = SIGNING_AUDIT_ACTIONS) -> QuerySet[AuditEntry]:
    """The loan OTP audit: sends, resends, failed tries, verifications, overrides, hand signatures."""
    qs = AuditEntry.objects.filter(entity=entity, action__in=actions).select_related("actor")
    start, end = _local_bounds(entity, date_from, date_to)
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lt=end)
    return qs.order_by("-created_at", "-id")


def login_detail(*, entity: Entity, date_from: dt.date | None = None, date_to: dt.date | None = None) -> QuerySet[AuditEntry]:
    """Sign-ins of the entity's users, with their sign-in codes sent, verified and failed. Failed
    password attempts carry no entity (the user is not known then) and are matched by username."""
    from imali.tenancy.models import User

    usernames = [u.lower() for u in User.objects.filter(entity=entity).values_list("username", flat=True)]
    qs = AuditEntry.objects.filter(Q(entity=entity) | Q(entity__isnull=True, subject__in=usernames),
                                   action__in=LOGIN_AUDIT_ACTIONS).select_related("actor")
    start, end = _local_bounds(entity, date_from, date_to)
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lt=end)
    return qs.order_by("-created_at", "-id")
