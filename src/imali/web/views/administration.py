"""Administration of one entity by its administrators: users, roles, branches, regions, audit log.

Lookups are by the signed-in user's entity, so another entity's user, role or branch is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from imali.core.selectors import audit_entries
from imali.tenancy.models import Branch, Region, Role, User
from imali.tenancy.rights import Right
from imali.tenancy.selectors import branches_of, roles_of, users_of
from imali.tenancy.services import (
    branch_create,
    branch_update,
    region_create,
    region_update,
    role_create,
    role_delete,
    role_set_rights,
    user_create,
    user_set_password,
    user_update,
)

from ..access import right_required
from ..forms import (
    BRANCH_FIELDS,
    AuditFilterForm,
    BranchForm,
    PasswordSetForm,
    RegionForm,
    RoleForm,
    UserForm,
    apply_service_errors,
    form_status,
)

NAV_ITEMS = [
    ("Users", "web:user_list", Right.MANAGE_USERS, "Setup"),
    ("Roles", "web:role_list", Right.MANAGE_USERS, "Setup"),
    ("Branches", "web:branch_list", Right.MANAGE_BRANCHES, "Setup"),
    ("Regions", "web:region_list", Right.MANAGE_BRANCHES, "Setup"),
    ("Audit log", "web:audit_log", Right.VIEW_AUDIT, "Reports"),
]

AUDIT_PAGE_SIZE = 50


# --- Users ----------------------------------------------------------------------------------------


@right_required(Right.MANAGE_USERS, methods=("GET", "HEAD"))
def user_list_view(request):
    return render(request, "web/administration/user_list.html", {"users": users_of(entity=request.entity)})


@right_required(Right.MANAGE_USERS)
def user_create_view(request):
    form = UserForm(request.POST or None, entity=request.entity)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(actor=request.user, entity=request.entity, data=form.service_data(),
                               password=form.cleaned_data["password"], roles=form.cleaned_data["roles"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"User {user.username} created.")
            return redirect("web:user_list")
    return render(request, "web/form.html", {"form": form, "title": "New user", "cancel_url": "web:user_list"}, status=form_status(form))


@right_required(Right.MANAGE_USERS)
def user_edit_view(request, user_id: int):
    user = get_object_or_404(User, entity=request.entity, pk=user_id)
    user.entity = request.entity
    form = UserForm(request.POST or None, entity=request.entity, instance=user)
    if request.method == "POST" and form.is_valid():
        try:
            user_update(actor=request.user, user=user, data=form.service_data(), roles=form.cleaned_data["roles"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"User {user.username} saved.")
            return redirect("web:user_list")
    return render(request, "web/form.html", {"form": form, "title": f"Edit user {user.username}", "cancel_url": "web:user_list"}, status=form_status(form))


@right_required(Right.MANAGE_USERS)
def user_password_view(request, user_id: int):
    user = get_object_or_404(User, entity=request.entity, pk=user_id)
    user.entity = request.entity
    if user.pk == request.user.pk:
        # Your own password needs your current one: that is the "change my password" screen.
        return redirect("web:password_change")
    form = PasswordSetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user_set_password(actor=request.user, user=user, password=form.cleaned_data["password"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Password of {user.username} set.")
            return redirect("web:user_list")
    return render(request, "web/form.html", {"form": form, "title": f"Set the password of {user.username}",
                                             "cancel_url": "web:user_list"}, status=form_status(form))


# --- Roles ----------------------------------------------------------------------------------------


@right_required(Right.MANAGE_USERS, methods=("GET", "HEAD"))
def role_list_view(request):
    roles = roles_of(entity=request.entity).annotate(user_count=Count("users", distinct=True))
    return render(request, "web/administration/role_list.html", {"roles": roles})


@right_required(Right.MANAGE_USERS)
def role_create_view(request):
    form = RoleForm(request.POST or None, entity=request.entity)
    if request.method == "POST" and form.is_valid():
        try:
            role = role_create(actor=request.user, entity=request.entity, name=form.cleaned_data["name"],
                               rights=form.cleaned_data["rights"], description=form.cleaned_data["description"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Role {role.name} created.")
            return redirect("web:role_list")
    return render(request, "web/administration/role_form.html", {"form": form, "title": "New role"}, status=form_status(form))


@right_required(Right.MANAGE_USERS)
def role_edit_view(request, role_id: int):
    role = get_object_or_404(Role, entity=request.entity, pk=role_id)
    role.entity = request.entity
    form = RoleForm(request.POST or None, entity=request.entity, instance=role)
    if request.method == "POST" and form.is_valid():
        try:
            role_set_rights(actor=request.user, role=role, rights=form.cleaned_data["rights"],
                            name=form.cleaned_data["name"], description=form.cleaned_data["description"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Role {form.cleaned_data['name']} saved.")
            return redirect("web:role_list")
    return render(request, "web/administration/role_form.html", {"form": form, "role": role, "title": f"Edit role {role.name}"}, status=form_status(form))


@right_required(Right.MANAGE_USERS)
def role_delete_view(request, role_id: int):
    role = get_object_or_404(Role.objects.annotate(user_count=Count("users")), entity=request.entity, pk=role_id)
    role.entity = request.entity
    if request.method == "POST":
        role_delete(actor=request.user, role=role)
        messages.success(request, f"Role {role.name} deleted.")
        return redirect("web:role_list")
    return render(request, "web/administration/role_delete.html", {"role": role})


# --- Branches and regions -------------------------------------------------------------------------


@right_required(Right.MANAGE_BRANCHES, methods=("GET", "HEAD"))
def branch_list_view(request):
    branches = branches_of(entity=request.entity).annotate(user_count=Count("users", distinct=True))
    return render(request, "web/administration/branch_list.html", {"branches": branches})


@right_required(Right.MANAGE_BRANCHES)
def branch_create_view(request):
    form = BranchForm(request.POST or None, entity=request.entity)
    if request.method == "POST" and form.is_valid():
        try:
            branch = branch_create(actor=request.user, entity=request.entity, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Branch {branch} created.")
            return redirect("web:branch_list")
    return render(request, "web/form.html", {"form": form, "title": "New branch", "cancel_url": "web:branch_list"}, status=form_status(form))


@right_required(Right.MANAGE_BRANCHES)
def branch_edit_view(request, branch_id: int):
    branch = get_object_or_404(Branch, entity=request.entity, pk=branch_id)
    branch.entity = request.entity
    form = BranchForm(request.POST or None, entity=request.entity, instance=branch)
    if request.method == "POST" and form.is_valid():
        try:
            branch_update(actor=request.user, branch=branch, data={name: form.cleaned_data[name] for name in BRANCH_FIELDS})
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Branch saved.")
            return redirect("web:branch_list")
    return render(request, "web/form.html", {"form": form, "title": f"Edit branch {branch}", "cancel_url": "web:branch_list"}, status=form_status(form))


@right_required(Right.MANAGE_BRANCHES)
def region_list_view(request):
    regions = Region.objects.filter(entity=request.entity).annotate(branch_count=Count("branches"))
    form = RegionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            region = region_create(actor=request.user, entity=request.entity, name=form.cleaned_data["name"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Region {region.name} created.")
            return redirect("web:region_list")
    return render(request, "web/administration/region_list.html", {"regions": regions, "form": form}, status=form_status(form))


@right_required(Right.MANAGE_BRANCHES)
def region_edit_view(request, region_id: int):
    region = get_object_or_404(Region, entity=request.entity, pk=region_id)
    region.entity = request.entity
    form = RegionForm(request.POST or None, initial={"name": region.name})
    if request.method == "POST" and form.is_valid():
        try:
            region_update(actor=request.user, region=region, name=form.cleaned_data["name"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Region saved.")
            return redirect("web:region_list")
    return render(request, "web/form.html", {"form": form, "title": f"Edit region {region.name}", "cancel_url": "web:region_list"}, status=form_status(form))


# --- Audit log ------------------------------------------------------------------------------------


@right_required(Right.VIEW_AUDIT, methods=("GET", "HEAD"))
def audit_log_view(request):
    form = AuditFilterForm(request.GET or None)
    page = Paginator(audit_entries(entity=request.entity, **form.filters()), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/administration/audit_log.html", {"form": form, "page": page})


urlpatterns = [
    path("administration/users/", user_list_view, name="user_list"),
    path("administration/users/new/", user_create_view, name="user_create"),
    path("administration/users/<int:user_id>/edit/", user_edit_view, name="user_edit"),
    path("administration/users/<int:user_id>/password/", user_password_view, name="user_password"),
    path("administration/roles/", role_list_view, name="role_list"),
    path("administration/roles/new/", role_create_view, name="role_create"),
    path("administration/roles/<int:role_id>/edit/", role_edit_view, name="role_edit"),
    path("administration/roles/<int:role_id>/delete/", role_delete_view, name="role_delete"),
    path("administration/branches/", branch_list_view, name="branch_list"),
    path("administration/branches/new/", branch_create_view, name="branch_create"),
    path("administration/branches/<int:branch_id>/edit/", branch_edit_view, name="branch_edit"),
    path("administration/regions/", region_list_view, name="region_list"),
    path("administration/regions/<int:region_id>/edit/", region_edit_view, name="region_edit"),
    path("administration/audit/", audit_log_view, name="audit_log"),
]
