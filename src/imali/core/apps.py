from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "imali.core"
    label = "core"
    verbose_name = "Core"
