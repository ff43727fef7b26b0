from django.apps import AppConfig


class SmsBankingConfig(AppConfig):
    name = "imali.smsbanking"
    label = "smsbanking"
    verbose_name = "SMS banking"

    def ready(self) -> None:
        # Messaging stores every inbound message and queues it here (one INSERT per receiving pass);
        # the answering worker (`manage.py smsbanking_answer`) answers the ones that are ours.
        from imali.core.stack import EXTRA_PROCESSES, StackProcess, manage
        from imali.messaging.inbound import INBOUND_BATCH_HANDLERS

        from .answering import queue_answers

        if queue_answers not in INBOUND_BATCH_HANDLERS:
            INBOUND_BATCH_HANDLERS.append(queue_answers)

        def sms_banking_answerer(*, host: str, port: int) -> StackProcess:
            return StackProcess("sms-banking-answerer", manage("smsbanking_answer"))

        if sms_banking_answerer.__name__ not in {e.__name__ for e in EXTRA_PROCESSES}:
            EXTRA_PROCESSES.append(sms_banking_answerer)
