"""Demo data of the replies feature: each demo lender's administrators are told of new replies
in the app, so a person sees "Get SMS Responses" and the daily run end in a Reply notice."""

from __future__ import annotations

from imali.tenancy.models import User
from imali.tenancy.rights import Right

from .models import ReplyNotifyRecipient
from .replies import reply_notify_set


def demo_reply_notify_ensure(*, entities) -> bool:
    """Name each entity's administrators (in the app) when nobody is named yet. Returns whether
    anything changed; idempotent."""
    changed = False
    for entity in entities:
        if ReplyNotifyRecipient.objects.filter(entity=entity).exists():
            continue
        admins = [u for u in User.objects.filter(entity=entity, is_active=True, roles__name="Administrator")
                  .distinct().order_by("pk") if u.has_right(Right.MAXSMS_REPLIES_SETUP)
                  and u.has_right(Right.REPORT_REPLY_DETAIL)]
        for admin in admins:
            reply_notify_set(actor=admin, entity=entity, user=admin, by_email=False, in_app=True)
            changed = True
    return changed
