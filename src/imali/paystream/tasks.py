"""Huey tasks of the payment stream: thin, they call services."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task

from . import services
from .models import WalletRequest, WalletStatus

log = logging.getLogger("imali.paystream")
WALLETS_PER_RUN = 500


@db_periodic_task(crontab(minute="*"))
@lock_task("paystream-wallet-poll")
def paystream_wallet_poll():
    """Every minute: ask the stream about requested wallets (it creates them asynchronously,
    normally within 10 minutes); a created wallet joins the client's accounts. Asked as the user
    who requested it, whose right is checked like any call. (The client screen's poll only reads;
    paystream_wallet_follow asks every few seconds for a while after the request.)"""
    for wallet in (WalletRequest.objects.filter(status=WalletStatus.REQUESTED).select_related("entity", "created_by")
                   .order_by("id")[:WALLETS_PER_RUN]):
        try:
            services.wallet_refresh(entity=wallet.entity, actor=wallet.created_by, wallet=wallet)
        except (ValidationError, PermissionDenied) as exc:
            log.warning("wallet request %s not refreshed: %s", wallet.pk, "; ".join(getattr(exc, "messages", [str(exc)])))


@db_periodic_task(crontab(minute="*/15"))
@lock_task("paystream-collections-fetch")
def paystream_collections_fetch():
    """Every quarter hour: import each entity's new collection results (receipts, declines,
    unpaids) from its payment stream."""
    from .models import StreamSettings

    for settings_row in StreamSettings.objects.select_related("entity"):
        try:
            services.collections_fetch(entity=settings_row.entity, actor=None, system=True)
        except ValidationError as exc:
            log.warning("collections of entity %s not fetched: %s", settings_row.entity_id, "; ".join(exc.messages))


MANDATES_PER_RUN = 500


@db_periodic_task(crontab(minute="*"))
@lock_task("paystream-mandate-poll")
def paystream_mandate_poll():
    """Every minute: ask the bank about DebiCheck mandates (and amendments) waiting for the client
    (approved, rejected or timed out), as the user who created each. (The loan screen's poll only
    reads; paystream_mandate_follow asks every few seconds for a while after each is sent.)"""
    from .mandates import mandate_refresh
    from .models import DebiCheckMandate, MandateState

    waiting = (DebiCheckMandate.objects.filter(status=MandateState.AUTHENTICATING)
               | DebiCheckMandate.objects.filter(amendments__status=MandateState.AUTHENTICATING))
    for mandate in waiting.distinct().select_related("entity", "created_by").order_by("id")[:MANDATES_PER_RUN]:
        try:
            mandate_refresh(entity=mandate.entity, actor=mandate.created_by, mandate=mandate)
        except (ValidationError, PermissionDenied) as exc:
            log.warning("DebiCheck mandate %s not refreshed: %s", mandate.pk, "; ".join(getattr(exc, "messages", [str(exc)])))


PAYMENTS_PER_RUN = 500


@db_periodic_task(crontab(minute="7"))
@lock_task("paystream-payment-returns")
def paystream_payment_returns():
    """Every hour: ask the stream about credit payments accepted in the last days, as the user who
    made each; a payment the receiving bank returned is recorded for a person to resolve (the loan
    book is not changed behind their back)."""
    import datetime as dt

    from django.utils import timezone

    from .models import CreditPayment, CreditPaymentStatus

    since = timezone.now() - dt.timedelta(days=services.RETURN_WINDOW_DAYS)
    for payment in (CreditPayment.objects.filter(status=CreditPaymentStatus.ACCEPTED, created_at__gte=since)
                    .select_related("entity", "created_by").order_by("id")[:PAYMENTS_PER_RUN]):
        try:
            services.credit_payment_check(entity=payment.entity, actor=payment.created_by, payment=payment)
        except (ValidationError, PermissionDenied) as exc:
            log.warning("credit payment %s not checked: %s", payment.pk, "; ".join(getattr(exc, "messages", [str(exc)])))


@db_task()
def paystream_wallet_follow(wallet_id: int, round_: int = 0):
    """A few seconds after a wallet is requested, and every few seconds for a while: ask the stream
    about it (services.follow_later), so the client page — whose poll only reads the database —
    shows it soon after the stream makes it. One call per wallet per round, however many pages
    are open."""
    wallet = WalletRequest.objects.filter(pk=wallet_id, status=WalletStatus.REQUESTED).select_related("entity", "created_by").first()
    if wallet is None:
        return
    try:
        wallet = services.wallet_refresh(entity=wallet.entity, actor=wallet.created_by, wallet=wallet)
    except (ValidationError, PermissionDenied) as exc:
        log.warning("wallet request %s not refreshed: %s", wallet_id, "; ".join(getattr(exc, "messages", [str(exc)])))
    if wallet.status == WalletStatus.REQUESTED and round_ + 1 < services.FOLLOW_ROUNDS:
        services.follow_later("wallet", wallet_id, round_ + 1)


@db_task()
def paystream_mandate_follow(mandate_id: int, round_: int = 0):
    """As paystream_wallet_follow, for a DebiCheck mandate (or its amendment) sent to the bank."""
    from .mandates import mandate_refresh
    from .models import DebiCheckMandate, MandateState

    def waiting(mandate) -> bool:
        return mandate.status == MandateState.AUTHENTICATING or mandate.amendments.filter(status=MandateState.AUTHENTICATING).exists()

    mandate = DebiCheckMandate.objects.filter(pk=mandate_id).select_related("entity", "created_by").first()
    if mandate is None or not waiting(mandate):
        return
    try:
        mandate = mandate_refresh(entity=mandate.entity, actor=mandate.created_by, mandate=mandate)
    except (ValidationError, PermissionDenied) as exc:
        log.warning("DebiCheck mandate %s not refreshed: %s", mandate_id, "; ".join(getattr(exc, "messages", [str(exc)])))
    if waiting(mandate) and round_ + 1 < services.FOLLOW_ROUNDS:
        services.follow_later("mandate", mandate_id, round_ + 1)
