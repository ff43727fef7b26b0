from django.apps import AppConfig


class SigningConfig(AppConfig):
    name = "imali.signing"
    label = "signing"
