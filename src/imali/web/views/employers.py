"""Employer screens: list, create, view with paypoints, edit, add a paypoint. Scoped by entity."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from imali.clients.models import Employer, Paypoint
from imali.clients.selectors import employer_list
from imali.clients.services import (
    employer_create,
    employer_update,
    paypoint_create,
    paypoint_update,
)
from imali.tenancy.rights import Right

from ..access import right_required
from ..display import fieldsets_display
from ..forms import EMPLOYER_FIELDS, EmployerForm, PaypointForm, apply_service_errors, form_status

NAV_ITEMS = [("Employers", "web:employer_list", Right.VIEW_CLIENTS, "Clients")]


def _employer(request, employer_id: int) -> Employer:
    employer = get_object_or_404(Employer, entity=request.entity, pk=employer_id)
    employer.entity = request.entity
    return employer


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def employer_list_view(request):
    employers = employer_list(entity=request.entity).annotate(client_count=Count("clients", distinct=True))
    return render(request, "web/employers/list.html", {
        "employers": employers, "can_manage": request.user.has_right(Right.MANAGE_EMPLOYERS),
    })


@right_required(Right.MANAGE_EMPLOYERS)
def employer_create_view(request):
    form = EmployerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            employer = employer_create(entity=request.entity, actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Employer {employer.name} created.")
            return redirect("web:employer_detail", employer_id=employer.pk)
    return render(request, "web/form.html", {"form": form, "title": "New employer", "cancel_url": "web:employer_list"}, status=form_status(form))


def _detail(request, employer: Employer, paypoint_form: PaypointForm, status: int = 200):
    return render(request, "web/employers/detail.html", {
        "employer": employer,
        "fields": fieldsets_display(employer, [("", EMPLOYER_FIELDS)])[0][1],
        "paypoints": list(employer.paypoints.all()),
        "client_count": employer.clients.count(),
        "can_manage": request.user.has_right(Right.MANAGE_EMPLOYERS),
        "paypoint_form": paypoint_form,
    }, status=status)


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def employer_detail_view(request, employer_id: int):
    return _detail(request, _employer(request, employer_id), PaypointForm())


@right_required(Right.MANAGE_EMPLOYERS)
def employer_edit_view(request, employer_id: int):
    employer = _employer(request, employer_id)
    form = EmployerForm(request.POST or None, instance=employer)
    if request.method == "POST" and form.is_valid():
        try:
            employer_update(employer=employer, actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Employer saved.")
            return redirect("web:employer_detail", employer_id=employer.pk)
    return render(request, "web/form.html", {"form": form, "title": f"Edit employer {employer.name}",
                                             "cancel_url": "web:employer_detail", "cancel_arg": employer.pk}, status=form_status(form))


@right_required(Right.MANAGE_EMPLOYERS)
def paypoint_create_view(request, employer_id: int):
    """The add-paypoint form lives on the employer's page; a GET just shows that page."""
    employer = _employer(request, employer_id)
    form = PaypointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            paypoint = paypoint_create(employer=employer, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Paypoint {paypoint.number} added.")
            return redirect("web:employer_detail", employer_id=employer.pk)
    return _detail(request, employer, form, status=form_status(form))


@right_required(Right.MANAGE_EMPLOYERS)
def paypoint_edit_view(request, paypoint_id: int):
    paypoint = get_object_or_404(Paypoint.objects.select_related("employer__entity"), employer__entity=request.entity, pk=paypoint_id)
    employer = paypoint.employer
    form = PaypointForm(request.POST or None, instance=paypoint)
    if request.method == "POST" and form.is_valid():
        try:
            paypoint_update(paypoint=paypoint, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Paypoint saved.")
            return redirect("web:employer_detail", employer_id=employer.pk)
    return render(request, "web/form.html", {"form": form, "title": f"Edit paypoint {paypoint.number} of {employer.name}",
                                             "cancel_url": "web:employer_detail", "cancel_arg": employer.pk}, status=form_status(form))


urlpatterns = [
    path("employers/", employer_list_view, name="employer_list"),
    path("employers/new/", employer_create_view, name="employer_create"),
    path("employers/<int:employer_id>/", employer_detail_view, name="employer_detail"),
    path("employers/<int:employer_id>/edit/", employer_edit_view, name="employer_edit"),
    path("employers/<int:employer_id>/paypoints/new/", paypoint_create_view, name="paypoint_create"),
    path("employers/paypoints/<int:paypoint_id>/edit/", paypoint_edit_view, name="paypoint_edit"),
]
