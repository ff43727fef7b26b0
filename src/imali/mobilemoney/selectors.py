"""Reads of mobile money that screens and the API share; every one takes the entity."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from .models import (
    Disbursement,
    DisbursementBatch,
    ProviderSetup,
    ProviderTransaction,
    StatementImport,
)


def setup_list(*, entity) -> QuerySet[ProviderSetup]:
    return ProviderSetup.objects.filter(entity=entity).order_by("provider")


def transaction_list(*, entity, status: str | None = None) -> QuerySet[ProviderTransaction]:
    rows = (ProviderTransaction.objects.filter(entity=entity)
            .select_related("setup", "loan", "loan__client", "receipt", "allocated_by").order_by("-transacted_at", "-id"))
    return rows.filter(status=status) if status else rows


def disbursement_list(*, entity, statuses: tuple[str, ...] | None = None) -> QuerySet[Disbursement]:
    rows = (Disbursement.objects.filter(entity=entity)
            .select_related("loan", "loan__client", "batch", "batch__approved_by", "created_by").order_by("-created_at", "-id"))
    return rows.filter(status__in=statuses) if statuses else rows


def batches_awaiting_approval(*, entity) -> QuerySet[DisbursementBatch]:
    return (DisbursementBatch.objects.filter(entity=entity, approved_by=None)
            .filter(disbursements__status="approval").distinct().select_related("created_by").order_by("created_at"))


def import_list(*, entity) -> QuerySet[StatementImport]:
    # The uploaded file (up to 40 MB each) is only read to preview and confirm one import, never to list them.
    return (StatementImport.objects.filter(entity=entity).select_related("imported_by", "setup").defer("content")
            .order_by("-imported_at"))


def loans_to_pay_out(*, entity, limit: int = 200):
    """The entity's approved loans not yet marked for a mobile payout (a failed or cancelled
    disbursement frees its loan again), oldest approval first, each with `payout_wallet`: the
    number its payout would go to (disbursements.payout_wallet's rule), or None when the client
    has none yet. One query."""
    from imali.clients.models import AccountKind, AccountPurpose, ClientAccount
    from imali.loans.models import Loan, LoanStatus

    from .models import DisbursementStatus

    marked = Disbursement.objects.filter(entity=entity).exclude(
        status__in=(DisbursementStatus.FAILED, DisbursementStatus.CANCELLED)).values("loan_id")
    wallet = (ClientAccount.objects.filter(client_id=OuterRef("client_id"), kind=AccountKind.WALLET, is_active=True,
                                           purpose__in=(AccountPurpose.PAYOUT, AccountPurpose.BOTH))
              .exclude(wallet_number="").order_by("id").values("wallet_number")[:1])
    return (Loan.objects.filter(entity=entity, status=LoanStatus.APPROVED).exclude(pk__in=marked)
            .select_related("client").annotate(payout_wallet=Subquery(wallet)).order_by("approved_at", "id")[:limit])
