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
    """Switch the payment stream on for the demo lenders in South Africa and point them at the local peer, so a
    person can register an account, create and print a promissory note, pay a loan out and create
    a wallet. The Administrator role holds every right, the stream's included. Idempotent: returns
    whether anything changed."""
    from imali.tenancy.models import Entity, Module, User

    from .models import StreamSettings
    from .services import stream_settings_save

    changed = False
    for entity in Entity.objects.filter(code__in=entity_codes):
        if not Module.PAYMENT_STREAMS.offered_in(entity.country):
            continue  # the stream is South Africa's: the Namibian demo lender has none
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


def demo_bank_accounts_cdv_ensure(*, entity_codes: list[str]) -> bool:
    """The demo book's bank account numbers are drawn without a check digit (the official table is
    not public: demo/regional.py), so against the table the demo runs with every one failed and
    "Register at the stream" on a demo client was a dead end. Here the last digit (or two) of each
    demo bank account whose branch the table knows is set so that it passes. Demo data only;
    idempotent: returns whether anything changed."""
    from imali.clients.models import AccountKind, ClientAccount

    from .services import cdv_table

    table = cdv_table()
    changed = []
    accounts = ClientAccount.objects.filter(client__entity__code__in=entity_codes, kind=AccountKind.BANK)
    for account in accounts.only("pk", "branch_code", "account_number", "account_type"):
        fixed = _cdv_valid_number(table, account.branch_code, account.account_number, account.account_type)
        if fixed is not None and fixed != account.account_number:
            account.account_number = fixed
            changed.append(account)
    ClientAccount.objects.bulk_update(changed, ["account_number"], batch_size=500)
    return bool(changed)


def _cdv_valid_number(table, branch_code: str, number: str, account_type: str) -> str | None:
    """The number itself if the table accepts it, else the nearest one differing in its last one or
    two digits that it accepts; None when the table does not know the branch or the length."""
    from . import cdv

    def passes(candidate: str) -> bool:
        try:
            cdv.verify(table, branch_code=branch_code, account_number=candidate, account_type=account_type)
        except cdv.CdvError as exc:
            if exc.code in (cdv.CdvFailure.UNKNOWN_BRANCH, cdv.CdvFailure.WRONG_LENGTH, cdv.CdvFailure.NOT_DIGITS):
                raise
            return False
        return True

    try:
        if passes(number):
            return number
        for width in (1, 2):
            for tail in range(10 ** width):
                candidate = f"{number[:-width]}{tail:0{width}d}"
                if passes(candidate):
                    return candidate
    except cdv.CdvError:
        return None
    return None
