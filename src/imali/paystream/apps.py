from django.apps import AppConfig


class PaystreamConfig(AppConfig):
    name = "imali.paystream"
    label = "paystream"
    verbose_name = "Payment stream"

    def ready(self) -> None:
        # `make demo` runs the local payment-stream peer on 127.0.0.1:8041; the demo entity's
        # stream settings point there (imali.paystream.demo_data).
        import sys

        from imali.core.stack import EXTRA_PROCESSES, StackProcess

        def paystream_peer(*, host: str, port: int) -> StackProcess:
            from .demo_data import (
                DEMO_MANDATE_ANSWER_SECONDS,
                DEMO_PEER_PASSWORD,
                DEMO_PEER_PORT,
                DEMO_PEER_USERNAME,
                DEMO_WALLET_DELAY,
            )

            return StackProcess(
                "paystream-peer",
                [sys.executable, "-m", "imali.peers.paystream", "--host", host, "--port", str(DEMO_PEER_PORT),
                 "--username", DEMO_PEER_USERNAME, "--wallet-delay", str(DEMO_WALLET_DELAY),
                 "--mandate-answer-seconds", str(DEMO_MANDATE_ANSWER_SECONDS)],
                url=f"http://{host}:{DEMO_PEER_PORT}/  (payment stream: clients, notes, payments, wallets, cards, DebiCheck mandates)",
                # The password in the environment, not on the command line (`ps` shows it).
                env={"IMALI_PAYSTREAM_PEER_PASSWORD": DEMO_PEER_PASSWORD},
            )

        if paystream_peer.__name__ not in {e.__name__ for e in EXTRA_PROCESSES}:
            EXTRA_PROCESSES.append(paystream_peer)
