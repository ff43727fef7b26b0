from __future__ import annotations

from django.contrib.sessions.models import Session
from django.utils import timezone


def expired_sessions_purge() -> int:
    """Delete sessions past their expiry; returns how many went."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
