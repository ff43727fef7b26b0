"""Reads of the payment stream, always inside one entity; each list is one query (no N+1)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from imali.clients.models import AccountKind, Client, ClientAccount
from imali.loans.models import Loan
from imali.signing.models import Mandate as SigningMandate
from imali.signing.models import MandateKind, Signature
from imali.tenancy.models import Entity

from .models import (
    CardIssueReceipt,
    CollectionProblem,
    CollectionResult,
    CreditPayment,
    DebiCheckMandate,
    MandateAmendment,
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


# -- DebiCheck mandates and their signed documents ------------------------------------------------
# Only these columns of a signature: its PDF stays in the database until someone downloads it.
SIGNATURE_COLUMNS = ("id", "mandate_id", "method", "signed_at", "hand_signature_required")


@dataclass(frozen=True)
class DebiCheckLink:
    """What a signing document (signing.Mandate) is to the payment stream's DebiCheck mandate:
    the terms of the mandate itself, or of one of its amendments (the client signs each again)."""

    mandate: DebiCheckMandate
    amendment: MandateAmendment | None
    document_id: int

    @property
    def current(self) -> bool:
        """The document holds the terms the mandate has now (an amendment's take over once the bank
        approves them; until then the mandate keeps its earlier ones)."""
        return self.mandate.document_id == self.document_id

    @property
    def status(self) -> str:
        return (self.amendment or self.mandate).get_status_display()


def debicheck_links(*, entity: Entity, documents: Iterable[SigningMandate]) -> dict[int, DebiCheckLink]:
    """For signing documents, the DebiCheck mandate each one belongs to, keyed by document id; two
    queries whatever the number of documents. A document made on the signing screen alone (no
    DebiCheck mandate at the stream) is not in the result."""
    documents = [d for d in documents if d.kind == MandateKind.DEBICHECK]
    if not documents:
        return {}
    # A mandate's document carries its contract reference; amendment n's, the reference + "/An".
    bases = {d.pk: d.contract_reference.split("/A", 1)[0] for d in documents}
    rows = {m.contract_reference: m for m in DebiCheckMandate.objects.filter(entity=entity, contract_reference__in=set(bases.values()))
            .select_related("account__account").prefetch_related("amendments")}
    links: dict[int, DebiCheckLink] = {}
    for document in documents:
        mandate = rows.get(bases[document.pk])
        if mandate is None:
            continue
        amendment = next((a for a in mandate.amendments.all() if a.document_id == document.pk), None)
        if amendment is None and document.contract_reference != mandate.contract_reference:
            continue
        links[document.pk] = DebiCheckLink(mandate=mandate, amendment=amendment, document_id=document.pk)
    return links


def loan_debicheck_mandates(*, entity: Entity, loan: Loan) -> list[DebiCheckMandate]:
    """The loan's DebiCheck mandates with their amendments, each with its signing document and that
    document's signature (without the PDF): a fixed number of queries for any number of mandates."""
    signatures = Signature.objects.only(*SIGNATURE_COLUMNS)
    return list(DebiCheckMandate.objects.filter(entity=entity, loan=loan)
                .select_related("account__account", "document")
                .prefetch_related(Prefetch("document__signature", queryset=signatures),
                                  Prefetch("amendments", queryset=MandateAmendment.objects.select_related("document")),
                                  Prefetch("amendments__document__signature", queryset=signatures)))
