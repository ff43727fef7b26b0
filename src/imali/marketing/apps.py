from django.apps import AppConfig


class MarketingConfig(AppConfig):
    name = "imali.marketing"
    label = "marketing"
    verbose_name = "Client marketing"
