"""Platform operator screens: the lenders (entities) on the platform and the SMS gateways that
carry their messages. Operators only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from imali.messaging.gateways import (
    gateway_create,
    gateway_update,
    route_add,
    route_remove,
    route_words,
)
from imali.messaging.models import Gateway, Route
from imali.messaging.selectors import gateways_overview
from imali.tenancy.models import Entity
from imali.tenancy.selectors import entities_all
from imali.tenancy.services import entity_onboard, entity_update

from ..access import OPERATOR, operator_required
from ..forms import (
    EntityEditForm,
    EntityOnboardForm,
    GatewayForm,
    RouteForm,
    apply_service_errors,
    form_status,
)
from ..live import Poll

NAV_ITEMS = [
    ("Entities", "web:entity_list", OPERATOR, "Platform"),
    ("New entity", "web:entity_create", OPERATOR, "Platform"),
    ("SMS gateways", "web:gateway_list", OPERATOR, "Platform"),
]


@operator_required(methods=("GET", "HEAD"))
def entity_list_view(request):
    entities = entities_all().annotate(user_count=Count("users", filter=Q(users__is_active=True), distinct=True))
    return render(request, "web/operator/entity_list.html", {"entities": entities})


@operator_required
def entity_create_view(request):
    form = EntityOnboardForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entity, admin = entity_onboard(actor=request.user, data=form.entity_data(), admin=form.admin_data(),
                                           admin_password=form.cleaned_data["admin_password"])
        except ValidationError as exc:
            apply_service_errors(form, exc, field_map=EntityOnboardForm.ADMIN_FIELD_MAP)
        else:
            messages.success(request, f"Entity {entity.name} created; its administrator is {admin.username}.")
            return redirect("web:entity_list")
    return render(request, "web/form.html", {"form": form, "title": "New entity", "cancel_url": "web:entity_list"}, status=form_status(form))


@operator_required
def entity_edit_view(request, entity_id: int):
    entity = get_object_or_404(Entity, pk=entity_id)
    form = EntityEditForm(request.POST or None, instance=entity)
    if request.method == "POST" and form.is_valid():
        try:
            entity_update(actor=request.user, entity=entity, data=form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Entity {form.cleaned_data['name']} saved.")
            return redirect("web:entity_list")
    return render(request, "web/form.html", {"form": form, "title": f"Edit entity {entity.name}", "cancel_url": "web:entity_list"}, status=form_status(form))


# The live state changes when a dispatcher or receiver writes it: on a change, at once.
GATEWAY_POLL_SECONDS = 5


def _gateway_rows() -> dict:
    return {"rows": gateways_overview(),
            "poll": Poll(element_id="gateway-states", url=reverse("web:gateway_states"), seconds=GATEWAY_POLL_SECONDS)}


@operator_required(methods=("GET", "HEAD"))
def gateway_list_view(request):
    return render(request, "web/operator/gateway_list.html", _gateway_rows())


@operator_required(methods=("GET", "HEAD"))
def gateway_states_view(request):
    """The gateways table, polled (htmx) for as long as the page is open: the processes write each
    gateway's state as it changes."""
    return render(request, "web/operator/_gateway_table.html", _gateway_rows())


@operator_required
def gateway_create_view(request):
    form = GatewayForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            gateway = gateway_create(actor=request.user, data=form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Gateway {gateway.name} created. Add its routes below; the dispatchers connect it when they restart.")
            return redirect("web:gateway_edit", gateway_id=gateway.pk)
    return render(request, "web/form.html", {"form": form, "title": "New SMS gateway", "cancel_url": "web:gateway_list"},
                  status=form_status(form))


@operator_required
def gateway_edit_view(request, gateway_id: int):
    gateway = get_object_or_404(Gateway, pk=gateway_id)
    form = GatewayForm(request.POST or None, instance=gateway)
    if request.method == "POST" and form.is_valid():
        try:
            gateway_update(actor=request.user, gateway=gateway, data=form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Gateway {gateway.name} saved.")
            return redirect("web:gateway_list")
    return _gateway_edit_page(request, gateway, form, RouteForm(), status=form_status(form))


def _gateway_edit_page(request, gateway: Gateway, form: GatewayForm, route_form: RouteForm, *, status: int):
    routes = [(r, route_words(r)) for r in gateway.routes.select_related("entity").order_by("rank", "id")]
    return render(request, "web/operator/gateway_edit.html", {
        "gateway": gateway, "form": form, "route_form": route_form, "routes": routes}, status=status)


@require_POST
@operator_required(methods=("POST",))
def gateway_route_add_view(request, gateway_id: int):
    gateway = get_object_or_404(Gateway, pk=gateway_id)
    route_form = RouteForm(request.POST)
    if route_form.is_valid():
        try:
            route = route_add(actor=request.user, gateway=gateway, entity=route_form.cleaned_data["entity"],
                              country=route_form.cleaned_data["country"], rank=route_form.cleaned_data["rank"])
        except ValidationError as exc:
            apply_service_errors(route_form, exc)
        else:
            messages.success(request, f"Route added: {route_words(route)}.")
            return redirect("web:gateway_edit", gateway_id=gateway.pk)
    return _gateway_edit_page(request, gateway, GatewayForm(instance=gateway), route_form, status=form_status(route_form))


@require_POST
@operator_required(methods=("POST",))
def gateway_route_remove_view(request, gateway_id: int, route_id: int):
    route = get_object_or_404(Route.objects.select_related("entity"), pk=route_id, gateway_id=gateway_id)
    words = route_words(route)
    route_remove(actor=request.user, route=route)
    messages.success(request, f"Route removed: {words}.")
    return redirect("web:gateway_edit", gateway_id=gateway_id)


urlpatterns = [
    path("operator/entities/", entity_list_view, name="entity_list"),
    path("operator/entities/new/", entity_create_view, name="entity_create"),
    path("operator/entities/<int:entity_id>/edit/", entity_edit_view, name="entity_edit"),
    path("operator/gateways/", gateway_list_view, name="gateway_list"),
    path("operator/gateways/states/", gateway_states_view, name="gateway_states"),
    path("operator/gateways/new/", gateway_create_view, name="gateway_create"),
    path("operator/gateways/<int:gateway_id>/edit/", gateway_edit_view, name="gateway_edit"),
    path("operator/gateways/<int:gateway_id>/routes/", gateway_route_add_view, name="gateway_route_add"),
    path("operator/gateways/<int:gateway_id>/routes/<int:route_id>/remove/", gateway_route_remove_view,
         name="gateway_route_remove"),
]
