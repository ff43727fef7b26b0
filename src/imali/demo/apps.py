from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "imali.demo"
    label = "demo"
