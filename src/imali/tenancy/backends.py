"""A user's rights are the union of their roles' rights (Django's group permissions, by role)."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission


class RoleBackend(ModelBackend):
    def _get_group_permissions(self, user_obj):
        return Permission.objects.filter(roles__users=user_obj, roles__entity_id=user_obj.entity_id)

    def user_can_authenticate(self, user):
        if not super().user_can_authenticate(user):
            return False
        # Staff of a switched-off entity cannot sign in.
        return user.entity_id is None or user.entity.is_active
