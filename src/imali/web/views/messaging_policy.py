"""MAXSMS General Setup's SMS types (a switch per message type, DOMAIN §3) and the direct-marketing
hours they live with (§5)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import path

from imali.messaging.models import MessageType
from imali.messaging.policy import (
    DIRECT_MARKETING_TYPES,
    OPT_OUT_TEXT,
    message_type_switches,
    message_types_update,
    window_description,
)
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import apply_service_errors

NAV_ITEMS = [
    ("SMS types", "web:messaging_sms_types", Right.MAXSMS_GENERAL_SETUP, "Setup"),
]


class SmsTypesForm(forms.Form):
    """One checkbox per switchable message type, labelled in people's words."""

    def __init__(self, *args, switches, **kwargs):
        super().__init__(*args, **kwargs)
        for message_type, label, enabled in switches:
            help_text = "Direct marketing: sent only in the allowed hours, with your name and the opt-out." \
                if message_type in DIRECT_MARKETING_TYPES else ""
            self.fields[message_type] = forms.BooleanField(required=False, label=label, initial=enabled,
                                                           help_text=help_text)


@right_required(Right.MAXSMS_GENERAL_SETUP)
def sms_types_view(request):
    entity = request.entity
    switches = message_type_switches(entity=entity)
    form = SmsTypesForm(request.POST or None, switches=switches)
    if request.method == "POST" and form.is_valid():
        try:
            changed = message_types_update(actor=request.user, entity=entity, enabled=dict(form.cleaned_data))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if changed:
                words = ", ".join(f"{MessageType(t).label} {'on' if form.cleaned_data[t] else 'off'}" for t in changed)
                messages.success(request, f"SMS types saved: {words}.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("web:messaging_sms_types")
    return render(request, "web/messaging/sms_types.html", {
        "form": form, "window": window_description(), "opt_out": OPT_OUT_TEXT,
        "marketing_labels": [MessageType(t).label for t in sorted(DIRECT_MARKETING_TYPES)]})


urlpatterns = [
    path("messaging/setup/sms-types/", sms_types_view, name="messaging_sms_types"),
]
