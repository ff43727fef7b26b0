from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "imali.batches"
    label = "batches"
    verbose_name = "Message batches"
