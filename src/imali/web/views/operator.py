"""Platform operator screens: the lenders (entities) on the platform. Operators only."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from imali.tenancy.models import Entity
from imali.tenancy.selectors import entities_all
from imali.tenancy.services import entity_onboard, entity_update

from ..access import OPERATOR, operator_required
from ..forms import EntityEditForm, EntityOnboardForm, apply_service_errors, form_status

NAV_ITEMS = [
    ("Entities", "web:entity_list", OPERATOR, "Platform"),
    ("New entity", "web:entity_create", OPERATOR, "Platform"),
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


urlpatterns = [
    path("operator/entities/", entity_list_view, name="entity_list"),
    path("operator/entities/new/", entity_create_view, name="entity_create"),
    path("operator/entities/<int:entity_id>/edit/", entity_edit_view, name="entity_edit"),
]
