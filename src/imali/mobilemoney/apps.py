from django.apps import AppConfig


class MobileMoneyConfig(AppConfig):
    name = "imali.mobilemoney"
    label = "mobilemoney"
    verbose_name = "Mobile money"

    def ready(self) -> None:
        # `make demo` runs the local M-PESA (8051) and MTN MoMo (8052) peers beside the web app; the
        # demo entity's M-PESA setup points at the first.
        import sys

        from imali.core.stack import EXTRA_PROCESSES, StackProcess

        def mpesa_peer(*, host: str, port: int) -> StackProcess:
            from django.db import DatabaseError

            from .demo_data import demo_peer_environment

            try:
                env = demo_peer_environment(web=f"http://{host}:{port}/")
            except DatabaseError:  # not migrated yet: the peer starts with nothing registered
                env = {}
            return StackProcess(
                "mpesa-peer", [sys.executable, "-m", "imali.peers.mpesa", "--host", host, "--port", "8051"],
                url=f"http://{host}:8051/  (M-PESA: simulate a customer payment)", env=env)

        def momo_peer(*, host: str, port: int) -> StackProcess:
            return StackProcess(
                "momo-peer", [sys.executable, "-m", "imali.peers.momo", "--host", host, "--port", "8052"],
                url=f"http://{host}:8052/  (MTN MoMo: approve or refuse requests to pay)")

        for extra in (mpesa_peer, momo_peer):
            if extra.__name__ not in {e.__name__ for e in EXTRA_PROCESSES}:
                EXTRA_PROCESSES.append(extra)
