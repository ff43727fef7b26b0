"""The home page: a lender's morning view (the book, today's and this month's money, the work
waiting, SMS credits and delivery), each figure linking to the screen behind it and shown only to a
user holding that screen's right; platform operators see the entities and their credits."""

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
from imali.loans.services import local_today
from imali.messaging.selectors import balances_by_entity
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right
from imali.tenancy.services import user_set_password

from ..access import is_operator, may_use
from ..charts import bar_chart_svg
from ..forms import ClientSearchForm, PasswordChangeForm, apply_service_errors, form_status
from ..selectors import book_morning, messaging_morning

NAV_ITEMS = [("Home", "web:home", None, "")]


def _entity_counts(entity: Entity) -> dict[str, int]:
    # Three indexed counts; one joined aggregate would multiply the rows of the three tables.
    return {
        "clients": Client.objects.filter(entity=entity).count(),
        "employers": Employer.objects.filter(entity=entity).count(),
        "users": User.objects.filter(entity=entity, is_active=True).count(),
    }


def _lender_morning(request) -> dict:
    entity = request.entity
    today = local_today(entity)
    may = {
        # The loan list is the screen behind every book figure.
        "loans": may_use(request, Right.VIEW_CLIENTS),
        "signing": may_use(request, Right.CAPTURE_LOANS),
        "credits": may_use(request, Right.MAXSMS_GENERAL_SETUP),
        "sms_detail": may_use(request, Right.REPORT_SMS_DETAIL),
        "users": may_use(request, Right.MANAGE_USERS),
    }
    context: dict = {"today": today, "may": may, "currency": entity.currency}
    if may["loans"] or may["signing"]:
        book = book_morning(entity=entity, today=today)
        context["book"] = book
        if may["loans"]:
            context["arrears_chart"] = bar_chart_svg(
                title="Arrears by days overdue", labels=[a.label for a in book.arrears],
                values=[a.amount for a in book.arrears], series=f"Arrears ({entity.currency})")
    if may["credits"] or may["sms_detail"]:
        context["sms"] = messaging_morning(entity=entity, today=today)
    return context


@require_http_methods(["GET", "HEAD"])
@login_required
def home(request):
    context: dict = {}
    if request.entity is not None:
        context["counts"] = _entity_counts(request.entity)
        context["can_search"] = request.user.has_right(Right.VIEW_CLIENTS)
        context["can_manage_clients"] = request.user.has_right(Right.MANAGE_CLIENTS)
        context["search_form"] = ClientSearchForm()
        context.update(_lender_morning(request))
    if is_operator(request.user):
        context["entity_counts"] = Entity.objects.aggregate(total=Count("id"), active=Count("id", filter=Q(is_active=True)))
        context["entity_balances"] = balances_by_entity()
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
    return render(request, "web/form.html", {"form": form, "title": "Change my password", "cancel_url": "web:home"}, status=form_status(form))


urlpatterns = [
    path("", home, name="home"),
    path("account/password/", password_change_view, name="password_change"),
]
