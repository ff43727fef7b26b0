from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "imali.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        # Every integer column of every model serializer reads strictly (ASCII digits, no "1.0"):
        # DRF builds those fields from this mapping, so no serializer can forget it.
        from django.db import models
        from rest_framework import serializers

        from .serializers.fields import StrictIntegerField

        for column in (models.IntegerField, models.SmallIntegerField, models.BigIntegerField,
                       models.PositiveIntegerField, models.PositiveSmallIntegerField, models.PositiveBigIntegerField):
            serializers.ModelSerializer.serializer_field_mapping[column] = StrictIntegerField
