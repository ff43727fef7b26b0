"""The demo lenders send automatic SMS and MIS SMS: switched on by `load_demo`, so a person running
`make demo` sees the day's batches and the managers' MIS SMS go out at the consumer's first tick."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from imali.tenancy.models import Entity, User

from . import services
from .models import MisStream

# Midnight: the day's runs are due as soon as the demo's consumer looks (every five minutes).
DEMO_RUN_AT = dt.time(0, 0)


def demo_switch_on(entities: Iterable[Entity]) -> bool:
    """Every automatic batch and MIS stream on for each entity, through the services (audited, by
    the entity's administrator); the MIS SMS go to the entity's users with a cellphone who are not
    generated staff (the demo logins). An entity already set up is left as it is. Returns whether
    anything changed."""
    changed = False
    for entity in entities:
        if services.automatic_setup_get(entity=entity).any_enabled or services.mis_setup_get(entity=entity).any_enabled:
            continue
        admin = User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()
        services.automatic_setup_update(actor=admin, entity=entity, data={
            "run_at": DEMO_RUN_AT, "due_enabled": True, "due_days_before": 3, "received_enabled": True,
            "birthday_enabled": True, "arrears_enabled": True, "arrears_minimum": Decimal("50.00"),
            "arrears_repeat_days": 7})
        managers = list(User.objects.filter(entity=entity, is_active=True, email__endswith="@demo.example")
                        .exclude(cellphone="").values_list("pk", flat=True))
        services.mis_setup_update(actor=admin, entity=entity,
                                  data={"run_at": DEMO_RUN_AT, **{f"{s}_enabled": True for s in MisStream.values}},
                                  recipients={s: managers for s in MisStream.values})
        changed = True
    return changed
