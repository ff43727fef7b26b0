"""Mobile-originated messages: stored once per provider id, matched to a client or user by number,
STOP turned into a permanent marketing opt-out."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import User

from .models import InboundMessage, MarketingOptOut, OutboxMessage

STOP_WORDS = frozenset({"STOP", "STOP ALL", "STOPALL", "UNSUBSCRIBE", "OPT OUT", "OPTOUT", "END", "CANCEL", "QUIT"})


def is_stop(text: str) -> bool:
    return " ".join(text.upper().split()).strip(".!") in STOP_WORDS


def _match(number: str):
    """The entity, client and user a number belongs to. A number known to several lenders answers
    the one that messaged it last."""
    last = (OutboxMessage.objects.filter(number=number).order_by("-created_at", "-id")
            .values_list("entity_id", "client_id", "user_id").first())
    if last is not None:
        entity_id, client_id, user_id = last
        if client_id is None:
            client_id = Client.objects.filter(entity_id=entity_id, cellphone=number).order_by("id").values_list("id", flat=True).first()
        return entity_id, client_id, user_id
    client = Client.objects.filter(cellphone=number).order_by("-id").values_list("entity_id", "id").first()
    if client is not None:
        return client[0], client[1], None
    user = User.objects.filter(cellphone=number, entity__isnull=False).order_by("id").values_list("entity_id", "id").first()
    if user is not None:
        return user[0], None, user[1]
    return None, None, None


def inbound_receive(*, gateway: str, provider_id: str, number: str, text: str, to_address: str = "") -> tuple[InboundMessage, bool]:
    """Store one mobile-originated message. Returns (message, created); the same provider id again
    returns the stored message and changes nothing."""
    found = InboundMessage.objects.filter(gateway=gateway, provider_id=provider_id).first()
    if found is not None:
        return found, False
    entity_id, client_id, user_id = _match(number)
    stop = is_stop(text)
    try:
        with transaction.atomic():
            message = InboundMessage.objects.create(gateway=gateway, provider_id=provider_id, entity_id=entity_id,
                                                    client_id=client_id, user_id=user_id, number=number,
                                                    to_address=to_address, text=text, is_stop=stop)
            if stop and entity_id is not None:
                _opt_out(message)
    except IntegrityError:  # another consumer stored it first
        return InboundMessage.objects.get(gateway=gateway, provider_id=provider_id), False
    return message, True


def _opt_out(message: InboundMessage) -> None:
    optout, created = MarketingOptOut.objects.get_or_create(
        entity_id=message.entity_id, number=message.number,
        defaults={"client_id": message.client_id, "inbound": message})
    clients = list(Client.objects.filter(entity_id=message.entity_id, cellphone=message.number, marketing_consent=True))
    Client.objects.filter(pk__in=[c.pk for c in clients]).update(marketing_consent=False)
    if created or clients:
        audit_record(action=AuditAction.MARKETING_OPTED_OUT, actor=None, entity=message.entity, target=optout,
                     subject=message.number, before={"marketing_consent": [c.pk for c in clients]},
                     after={"opted_out": True, "inbound": message.pk})
