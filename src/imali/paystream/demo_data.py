"""The demo's payment stream: the local peer on 127.0.0.1:8041 (started by `make demo`, see
apps.py) and the demo entity's settings pointing at it."""

from __future__ import annotations

DEMO_PEER_PORT = 8041
DEMO_PEER_USERNAME = "imali-demo"
# A demo-only credential for a loopback peer that holds made-up data; real credentials are entered
# on the stream settings screen and never kept in the repository.
DEMO_PEER_PASSWORD = "demo-stream-password"
DEMO_WALLET_DELAY = 5
# The demo bank's client answers a DebiCheck authentication (approves) this many seconds after the
# request, so a person sees the mandate's status change on the loan page by itself.
DEMO_MANDATE_ANSWER_SECONDS = 8


def paystream_demo_ensure(*, entity_codes: list[str], host: str = "127.0.0.1") -> bool:
    """Switch the payment stream on for the demo lenders and point them at the local peer, so a
    person can register an account, create and print a promissory note, pay a loan out and create
    a wallet. The Administrator role holds every right, the stream's included. Idempotent: returns
    whether anything changed."""
    from imali.tenancy.models import Entity, Module, User

    from .models import StreamSettings
    from .services import stream_settings_save

    changed = False
    for entity in Entity.objects.filter(code__in=entity_codes):
        if not entity.has_module(Module.PAYMENT_STREAMS):
            entity.modules = [*entity.modules, Module.PAYMENT_STREAMS.value]
            entity.save(update_fields=["modules"])
            changed = True
        if not StreamSettings.objects.filter(entity=entity).exists():
            admin = User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()
            stream_settings_save(entity=entity, actor=admin, base_url=f"http://{host}:{DEMO_PEER_PORT}",
                                 username=DEMO_PEER_USERNAME, password=DEMO_PEER_PASSWORD, branch_code="HO")
            changed = True
    return changed
