from django.apps import AppConfig


class SmsBankingConfig(AppConfig):
    name = "imali.smsbanking"
    label = "smsbanking"
    verbose_name = "SMS banking"

    def ready(self) -> None:
        # Messaging stores every inbound message; this app answers the ones that are ours.
        from imali.messaging.inbound import INBOUND_HANDLERS

        from .engine import handle_inbound

        if handle_inbound not in INBOUND_HANDLERS:
            INBOUND_HANDLERS.append(handle_inbound)
