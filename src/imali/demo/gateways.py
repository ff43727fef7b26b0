"""The demo's SMS gateways and routes: the local SMSC first for every demo country, and one local
HTTP aggregator behind it per country as the failover route (Africa's Talking for ZA, Clickatell
for NA). `make demo` runs the three peers (imali.messaging.apps); `load_demo` writes these rows.

The ports and the API key are those of local stand-ins on loopback: nothing here is a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.db import transaction

SMSC_GATEWAY = "local-smsc"


@dataclass(frozen=True)
class DemoAggregator:
    kind: str  # a GatewayKind of an HTTP aggregator
    gateway: str
    port: int
    failover_for: str  # the demo country whose route it backs up
    api_key: str = "demo-local-key"
    username: str = "imali"  # Africa's Talking's account name; Clickatell ignores it


DEMO_AGGREGATORS = (
    DemoAggregator("africastalking", "local-africastalking", 8031, "ZA"),
    DemoAggregator("clickatell", "local-clickatell", 8032, "NA"),
)


def aggregator_base_url(aggregator: DemoAggregator, *, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{aggregator.port}"


def demo_gateways_ensure(*, countries=("ZA", "NA")) -> list[str]:
    """Create what is missing of the demo's gateways and routes; returns what it added.

    The local SMSC gateway is written here too (with the dispatcher's defaults), since
    `messaging_dispatch` adds it by itself only when no gateway exists at all."""
    from imali.messaging.models import Gateway, Route

    added: list[str] = []
    with transaction.atomic():
        smsc, created = Gateway.objects.get_or_create(name=SMSC_GATEWAY, defaults={
            "host": os.environ.get("IMALI_SMPP_HOST", "127.0.0.1"), "port": int(os.environ.get("IMALI_SMPP_PORT", "2775")),
            "system_id": os.environ.get("IMALI_SMPP_SYSTEM_ID", "imali"),
            "password": os.environ.get("IMALI_SMPP_PASSWORD", "secret")})
        if created:
            added.append(f"gateway {smsc.name}")
        for a in DEMO_AGGREGATORS:
            gateway, created = Gateway.objects.get_or_create(name=a.gateway, defaults={
                "kind": a.kind, "base_url": aggregator_base_url(a), "api_key": a.api_key, "account": a.username,
                "window": 10, "rate_per_second": 50})
            if created:
                added.append(f"gateway {gateway.name}")
        # A country's routes are tried before any-country routes, whatever their rank, so each
        # demo country gets the SMSC at rank 0 and its aggregator at rank 1 explicitly.
        # Any other country (a client with a Botswana number, say) goes to the SMSC alone.
        backups = {a.failover_for: a.gateway for a in DEMO_AGGREGATORS}
        for country in (*countries, ""):
            wanted = [(SMSC_GATEWAY, 0)] + ([(backups[country], 1)] if country in backups else [])
            for name, rank in wanted:
                _, created = Route.objects.get_or_create(entity=None, country=country, gateway=Gateway.objects.get(name=name),
                                                         defaults={"rank": rank})
                if created:
                    added.append(f"route {country or 'any country'} → {name} (rank {rank})")
    return added
