from django.apps import AppConfig


class RemindersConfig(AppConfig):
    name = "imali.reminders"
    label = "reminders"
    verbose_name = "Automatic SMS and MIS SMS"
