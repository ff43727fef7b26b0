from django.apps import AppConfig


class LoansConfig(AppConfig):
    name = "imali.loans"
    label = "loans"
