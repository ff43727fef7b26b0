from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "imali.api"
    label = "api"
    verbose_name = "REST API"
