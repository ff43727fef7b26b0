from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "imali.messaging"
    label = "messaging"

    def ready(self) -> None:
        # `make demo` runs the local SMSC (with its phone page), the two local HTTP aggregators
        # (the failover routes load_demo configures) and one SMS dispatcher beside the web app and
        # the Huey consumer. The dispatcher starts its receiver process (messaging_receive, the
        # receiver bind that takes receipts and replies) beside itself and ends it with itself.
        import sys

        from imali.core.stack import EXTRA_PROCESSES, StackProcess, manage

        def local_smsc(*, host: str, port: int) -> StackProcess:
            return StackProcess(
                "smsc-peer",
                [sys.executable, "-m", "imali.peers.smsc", "--host", host, "--port", "2775", "--http-port", "8025"],
                url=f"http://{host}:8025/  (the phone: what each number received)",
            )

        def sms_dispatcher(*, host: str, port: int) -> StackProcess:
            return StackProcess("sms-dispatcher", manage("messaging_dispatch"))

        def aggregator_peer(kind: str):
            def start(*, host: str, port: int) -> StackProcess:
                from imali.api.endpoints.callbacks import callback_url
                from imali.demo.gateways import DEMO_AGGREGATORS, aggregator_base_url

                a = next(a for a in DEMO_AGGREGATORS if a.kind == kind)
                # Delivery reports go to the web app wherever run_stack put it (--port).
                web = f"http://{host}:{port}"
                # The API key and the callback URLs (which carry the callback token) go in the
                # environment, not the command line, which `ps` shows to every user of the machine.
                return StackProcess(
                    f"{kind}-peer",
                    [sys.executable, "-m", "imali.peers.aggregators", "--kind", kind, "--host", host, "--port", str(a.port),
                     "--username", a.username],
                    url=f"{aggregator_base_url(a, host=host)}/  (gateway {a.gateway}: failover route for "
                        f"{a.failover_for})",
                    env={"IMALI_PEER_API_KEY": a.api_key,
                         "IMALI_PEER_CALLBACK": callback_url(base_url=web, kind=kind, event="delivery", gateway_name=a.gateway),
                         "IMALI_PEER_INBOUND_CALLBACK": callback_url(base_url=web, kind=kind, event="inbound",
                                                                     gateway_name=a.gateway)},
                )
            # EXTRA_PROCESSES is deduplicated by name: each peer's starter has its own.
            start.__name__ = f"{kind}_peer"
            return start

        for extra in (local_smsc, aggregator_peer("africastalking"), aggregator_peer("clickatell"), sms_dispatcher):
            if extra.__name__ not in {e.__name__ for e in EXTRA_PROCESSES}:
                EXTRA_PROCESSES.append(extra)
