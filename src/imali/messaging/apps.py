from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "imali.messaging"
    label = "messaging"
