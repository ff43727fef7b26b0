"""Reads of tenancy data, scoped to an entity."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Branch, Entity, Role, User


def users_of(*, entity: Entity) -> QuerySet[User]:
    return User.objects.filter(entity=entity).select_related("home_branch").prefetch_related(
        Prefetch("roles", queryset=Role.objects.only("id", "name"))
    )


def roles_of(*, entity: Entity) -> QuerySet[Role]:
    return Role.objects.filter(entity=entity).prefetch_related("rights")


def branches_of(*, entity: Entity) -> QuerySet[Branch]:
    return Branch.objects.filter(entity=entity).select_related("region")


def entities_all() -> QuerySet[Entity]:
    return Entity.objects.all()
