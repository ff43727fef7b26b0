from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "imali.messaging"
    label = "messaging"

    def ready(self) -> None:
        # `make demo` runs the local SMSC (with its phone page) and one SMS dispatcher beside the
        # web app and the Huey consumer.
        import sys

        from imali.core.stack import EXTRA_PROCESSES, StackProcess, manage

        def local_smsc(*, host: str) -> StackProcess:
            return StackProcess(
                "smsc-peer",
                [sys.executable, "-m", "imali.peers.smsc", "--host", host, "--port", "2775", "--http-port", "8025"],
                url=f"http://{host}:8025/  (the phone: what each number received)",
            )

        def sms_dispatcher(*, host: str) -> StackProcess:
            return StackProcess("sms-dispatcher", manage("messaging_dispatch"))

        for extra in (local_smsc, sms_dispatcher):
            if extra.__name__ not in {e.__name__ for e in EXTRA_PROCESSES}:
                EXTRA_PROCESSES.append(extra)
