from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "imali.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy"
