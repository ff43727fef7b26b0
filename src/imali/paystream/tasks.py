"""Huey tasks of the payment stream: thin, they call services."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from . import services
from .models import WalletRequest, WalletStatus

log = logging.getLogger("imali.paystream")
WALLETS_PER_RUN = 500


@db_periodic_task(crontab(minute="*"))
@lock_task("paystream-wallet-poll")
def paystream_wallet_poll():
    """Every minute: ask the stream about requested wallets (it creates them asynchronously,
    normally within 10 minutes); a created wallet joins the client's accounts. Asked as the user
    who requested it, whose right is checked like any call. The client screen polls too."""
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
    (approved, rejected or timed out), as the user who created each; the loan screen polls too."""
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
