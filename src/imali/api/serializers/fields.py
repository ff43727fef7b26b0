"""Serializer fields shared by the API's domains."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet
from rest_framework import serializers


class EntityRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key given by id, accepted only when the row is the caller's entity's.

    ``scope(queryset, entity)`` narrows the model's rows to one entity (for models that reach
    their entity through another row, e.g. a paypoint through its employer). An id of another
    entity gets the same message as an id that does not exist, so nothing leaks about it.
    """

    default_error_messages = {
        "does_not_exist": "No such record in your entity (id {pk_value}).",
    }

    def __init__(self, *, scope: Callable[[QuerySet, object], QuerySet] | None = None, **kwargs):
        self.scope = scope or (lambda queryset, entity: queryset.filter(entity=entity))
        super().__init__(**kwargs)

    def get_queryset(self):
        queryset = super().get_queryset()
        view = self.context.get("view")
        entity = getattr(view, "entity", None) if view is not None else None
        if entity is None:
            return queryset.none()
        return self.scope(queryset, entity)
