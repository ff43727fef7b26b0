"""A user's rights are the union of their roles' rights (Django's group permissions, by role)."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from imali.core.countries import payment_streams_offered

from .rights import Right


class RoleBackend(ModelBackend):
    def _get_group_permissions(self, user_obj):
        found = Permission.objects.filter(roles__users=user_obj, roles__entity_id=user_obj.entity_id)
        entity = user_obj.entity if user_obj.entity_id else None
        if entity is not None and not payment_streams_offered(entity.country):
            # Outside South Africa there is no payment stream: a role that lists its right (a
            # role copied from a ZA lender, say) opens none of its screens or its API.
            found = found.exclude(codename=Right.PAYMENT_STREAM_WEB_SERVICES.value)
        return found

    def user_can_authenticate(self, user):
        if not super().user_can_authenticate(user):
            return False
        # Staff of a switched-off entity cannot sign in.
        return user.entity_id is None or user.entity.is_active
