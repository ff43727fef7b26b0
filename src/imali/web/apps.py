from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "imali.web"
    label = "web"
    verbose_name = "Web screens"
