"""Demo data of client marketing: each demo lender has an SMS and an email custom message saved
(Messaging → Marketing messages), so a data set can be sent to from the first sign-in."""

from __future__ import annotations

from imali.tenancy.models import Entity, User

from .models import CustomMessage
from .services import custom_message_save

DEMO_MESSAGES = (
    ("sms", "Top-up offer", "", "Hi {^Client Name^} you may qualify for a top-up loan. Visit {^Branch Name^} or call "
                                "{^Branch Telephone^}"),
    ("email", "New loan offer", "A loan offer for {^Client Name^}",
     "Dear {^Client Name^} as a valued client of {^Legal Entity Name^} you may qualify for a new loan. Visit "
     "{^Branch Name^} or call {^Branch Telephone^} to hear more."),
)


def demo_custom_messages_ensure(*, entities) -> bool:
    """Save the demo custom messages where the entity has none of that name. Returns whether anything
    was saved (a second load changes nothing)."""
    changed = False
    for entity in entities:
        entity = entity if isinstance(entity, Entity) else Entity.objects.get(pk=entity)
        admin = User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()
        if admin is None:
            continue
        for channel, name, subject, text in DEMO_MESSAGES:
            if not CustomMessage.objects.filter(entity=entity, channel=channel, name=name).exists():
                custom_message_save(actor=admin, entity=entity, channel=channel, name=name, subject=subject, text=text)
                changed = True
    return changed


def add_marketing_fields(connection, summary, rng) -> None:
    """Generated books: the client fields client marketing added (payback type, marketing info,
    available for instalment per the client detail and per the latest budget), filled set-based,
    one UPDATE per entity, from each client's id and salary. The generator's random source is not
    touched, so the extensions after this one produce the same book for a seed."""
    from imali.clients.models import Client

    table = Client._meta.db_table
    from imali.loans.demo_data import PAYBACK_ELSEWHERE
    from imali.loans.models import PaybackType

    def payback_for(country: str) -> str:
        # South Africa's debit streams (DebiCheck, NAEDO, Social-grant EFT) only for its lenders.
        kinds = ("debit_order", "debit_order", "debit_order", "debicheck", "eft", "eft", "cash", "naedo", "social_grant_eft")
        kinds = tuple(k if PaybackType(k).offered_in(country) else PAYBACK_ELSEWHERE[k] for k in kinds)
        return f"CASE id %% 10 {' '.join(f'WHEN {n} THEN {k!r}' for n, k in enumerate(kinds))} ELSE 'mobile_money' END"

    info = ("CASE id %% 7 WHEN 0 THEN 'Referred by a friend' WHEN 1 THEN 'Walk-in' WHEN 2 THEN 'Radio advert' "
            "WHEN 3 THEN 'Pamphlet at the paypoint' ELSE '' END")
    with connection.cursor() as cursor:
        for book in summary.entities:
            cursor.execute(
                f"UPDATE {table} SET payback_type = {payback_for(book.country)}, marketing_info = {info}, "
                f"available_for_instalment = CASE WHEN salary IS NULL THEN NULL "
                f"ELSE ROUND(salary * (15 + id %% 16) / 100, 2) END, "
                f"budget_available_for_instalment = CASE WHEN salary IS NULL OR id %% 3 <> 0 THEN NULL "
                f"ELSE ROUND(salary * (10 + id %% 11) / 100, 2) END "
                f"WHERE id BETWEEN %s AND %s", [book.first_client_id, book.last_client_id])
