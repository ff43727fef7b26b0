from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "imali.clients"
    label = "clients"
    verbose_name = "Clients"
