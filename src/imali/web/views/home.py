"""The dashboard: what the entity holds at a glance and a quick client search."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods

from imali.clients.models import Client, Employer
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right
from imali.tenancy.services import user_set_password

from ..access import is_operator
from ..forms import ClientSearchForm, PasswordChangeForm, apply_service_errors

NAV_ITEMS = [("Home", "web:home", None, "")]


def _entity_counts(entity: Entity) -> dict[str, int]:
    # Three indexed counts; one joined aggregate would multiply the rows of the three tables.
    return {
        "clients": Client.objects.filter(entity=entity).count(),
        "employers": Employer.objects.filter(entity=entity).count(),
        "users": User.objects.filter(entity=entity, is_active=True).count(),
    }


@require_http_methods(["GET", "HEAD"])
@login_required
def home(request):
    context: dict = {}
    if request.entity is not None:
        context["counts"] = _entity_counts(request.entity)
        context["can_search"] = request.user.has_right(Right.VIEW_CLIENTS)
        context["can_manage_clients"] = request.user.has_right(Right.MANAGE_CLIENTS)
        context["search_form"] = ClientSearchForm()
    if is_operator(request.user):
        context["entity_counts"] = Entity.objects.aggregate(total=Count("id"), active=Count("id", filter=Q(is_active=True)))
    return render(request, "web/home.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def password_change_view(request):
    """Any signed-in user, operators too, changes their own password."""
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_set_password(actor=request.user, user=request.user, password=form.cleaned_data["password"],
                                     current_password=form.cleaned_data["current_password"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            # The session is bound to the old password's hash; keep this one signed in.
            update_session_auth_hash(request, user)
            messages.success(request, "Your password is changed.")
            return redirect("web:home")
    return render(request, "web/form.html", {"form": form, "title": "Change my password", "cancel_url": "web:home"})


urlpatterns = [
    path("", home, name="home"),
    path("account/password/", password_change_view, name="password_change"),
]
