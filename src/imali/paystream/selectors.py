"""Reads of the payment stream, always inside one entity; each list is one query (no N+1)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from imali.clients.models import AccountKind, Client, ClientAccount
from imali.loans.models import Loan
from imali.tenancy.models import Entity

from .models import (
    CardIssueReceipt,
    CollectionProblem,
    CollectionResult,
    CreditPayment,
    NoteInstalment,
    PromissoryNote,
    StreamAccount,
    StreamClient,
    StreamRequest,
    WalletRequest,
)


def client_registration(*, entity: Entity, client: Client) -> StreamClient | None:
    return StreamClient.objects.filter(entity=entity, client=client).first()


def stream_accounts_qs(*, entity: Entity, client: Client) -> QuerySet[StreamAccount]:
    return StreamAccount.objects.filter(entity=entity, client=client, account__is_active=True).select_related("account")


def stream_accounts(*, entity: Entity, client: Client) -> list[StreamAccount]:
    return list(stream_accounts_qs(entity=entity, client=client))


def unregistered_bank_accounts(*, entity: Entity, client: Client) -> list[ClientAccount]:
    return list(ClientAccount.objects.filter(client__entity=entity, client=client, kind=AccountKind.BANK, is_active=True,
                                             stream_registration__isnull=True))


def wallet_requests(*, entity: Entity, client: Client) -> list[WalletRequest]:
    return list(WalletRequest.objects.filter(entity=entity, client=client))


def credit_payments(*, entity: Entity, client: Client, loan: Loan | None = None) -> list[CreditPayment]:
    rows = CreditPayment.objects.filter(entity=entity, client=client).select_related("account_1__account", "account_2__account")
    if loan is not None:
        rows = rows.filter(loan=loan)
    return list(rows[:200])


def card_receipts(*, entity: Entity, client: Client) -> list[CardIssueReceipt]:
    return list(CardIssueReceipt.objects.filter(entity=entity, client=client).select_related("printed_by")[:100])


def loan_notes(*, entity: Entity, loan: Loan) -> list[PromissoryNote]:
    return list(PromissoryNote.objects.filter(entity=entity, loan=loan).select_related("account__account")
                .prefetch_related(Prefetch("instalments", queryset=NoteInstalment.objects.order_by("seq"))))


def request_log(*, entity: Entity) -> QuerySet[StreamRequest]:
    return StreamRequest.objects.filter(entity=entity).select_related("actor").order_by("-id")


def loan_collection_results(*, entity: Entity, loan: Loan) -> list[CollectionResult]:
    return list(CollectionResult.objects.filter(entity=entity, note__loan=loan).select_related("instalment", "receipt")[:500])


def collection_problems(*, entity: Entity, limit: int = 50) -> list[CollectionProblem]:
    """The latest lines of the results feed that could not be read, for a person to follow up."""
    return list(CollectionProblem.objects.filter(entity=entity).order_by("-id")[:limit])
