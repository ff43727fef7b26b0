"""Client screens: search, create, view, edit, add an account, add a note.

Every lookup is by the signed-in user's entity, so another entity's client is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from imali.clients.models import Client
from imali.clients.selectors import client_get, client_search
from imali.clients.services import client_account_add, client_create, client_note_add, client_update
from imali.loans.selectors import loan_list
from imali.messaging.selectors import client_sms_history, sms_history_rows
from imali.signing.selectors import client_history, client_marketing
from imali.signing.services import enrolment_active
from imali.tenancy.rights import Right

from ..access import client_ip, right_required
from ..display import fieldsets_display
from ..forms import (
    CLIENT_FIELDSETS,
    ClientAccountForm,
    ClientForm,
    ClientNoteForm,
    ClientSearchForm,
    apply_service_errors,
    form_status,
)

NAV_ITEMS = [
    ("Clients", "web:client_search", Right.VIEW_CLIENTS, "Clients"),
    ("New client", "web:client_create", Right.MANAGE_CLIENTS, "Clients"),
]

HISTORY_LIMIT = 100
# The detail page lists the newest loans only; a client with a long history has a statement.
LOANS_LIMIT = 20
SMS_HISTORY_LIMIT = 5


def _client(request, client_id: int) -> Client:
    try:
        client = client_get(entity=request.entity, pk=client_id)
    except Client.DoesNotExist:
        raise Http404("No such client.") from None
    client.entity = request.entity  # the same row, already loaded: saves the services a query
    return client


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def client_search_view(request):
    form = ClientSearchForm(request.GET or None)
    query = form.cleaned_data["q"] if form.is_valid() else ""
    # With nothing typed the newest clients are listed, so the screen is useful on opening.
    results = list(client_search(entity=request.entity, query=query))
    return render(request, "web/clients/search.html", {
        "form": form, "query": query, "results": results,
        "can_create": request.user.has_right(Right.MANAGE_CLIENTS),
    })


@right_required(Right.MANAGE_CLIENTS)
def client_create_view(request):
    form = ClientForm(request.POST or None, entity=request.entity, default_branch=request.user.home_branch)
    if request.method == "POST" and form.is_valid():
        try:
            client = client_create(entity=request.entity, actor=request.user, data=form.cleaned_data, ip_address=client_ip(request))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Client {client.number} {client.display_name} created.")
            return redirect("web:client_detail", client_id=client.pk)
    return render(request, "web/clients/form.html", {"form": form, "title": "New client"}, status=form_status(form))


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def client_detail_view(request, client_id: int):
    client = _client(request, client_id)
    # Enrolment, signing and a STOP from the client's cellphone belong to the client's history too.
    history = client_history(entity=request.entity, client=client, limit=HISTORY_LIMIT)
    return render(request, "web/clients/detail.html", {
        "client": client,
        "fieldsets": fieldsets_display(client, CLIENT_FIELDSETS),
        "accounts": list(client.accounts.all()),
        "notes": list(client.client_notes.select_related("created_by")),
        "history": history,
        "marketing": client_marketing(entity=request.entity, client=client),
        "enrolment": enrolment_active(entity=request.entity, client=client),
        "loans": list(loan_list(entity=request.entity, client_id=client.pk)[:LOANS_LIMIT]),
        "loans_limit": LOANS_LIMIT,
        # The client SMS history's newest rows (DOMAIN §3 columns); the full history and single SMS
        # are one click away.
        "sms_history": sms_history_rows(entity=request.entity, messages=client_sms_history(
            entity=request.entity, client_id=client.pk)[:SMS_HISTORY_LIMIT]),
        "sms_history_limit": SMS_HISTORY_LIMIT,
        "can_manage": request.user.has_right(Right.MANAGE_CLIENTS),
        "can_apply": request.user.has_right(Right.CAPTURE_LOANS),
        "note_form": ClientNoteForm(),
    })


@right_required(Right.MANAGE_CLIENTS)
def client_edit_view(request, client_id: int):
    client = _client(request, client_id)
    form = ClientForm(request.POST or None, entity=request.entity, instance=client)
    if request.method == "POST" and form.is_valid():
        try:
            client_update(client=client, actor=request.user, data=form.cleaned_data, ip_address=client_ip(request))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Client {client.number} saved.")
            return redirect("web:client_detail", client_id=client.pk)
    return render(request, "web/clients/form.html", {"form": form, "client": client, "title": f"Edit client {client.number}"}, status=form_status(form))


@right_required(Right.MANAGE_CLIENTS)
def client_account_create_view(request, client_id: int):
    client = get_object_or_404(Client.objects.select_related("entity"), entity=request.entity, pk=client_id)
    form = ClientAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            client_account_add(client=client, actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Account added.")
            return redirect("web:client_detail", client_id=client.pk)
    return render(request, "web/clients/account_form.html", {"form": form, "client": client}, status=form_status(form))


@right_required(Right.MANAGE_CLIENTS)
def client_note_create_view(request, client_id: int):
    client = get_object_or_404(Client.objects.select_related("entity"), entity=request.entity, pk=client_id)
    form = ClientNoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            client_note_add(client=client, actor=request.user, text=form.cleaned_data["text"],
                            is_display_note=form.cleaned_data["is_display_note"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Note added.")
            return redirect("web:client_detail", client_id=client.pk)
    return render(request, "web/clients/note_form.html", {"form": form, "client": client}, status=form_status(form))


urlpatterns = [
    path("clients/", client_search_view, name="client_search"),
    path("clients/new/", client_create_view, name="client_create"),
    path("clients/<int:client_id>/", client_detail_view, name="client_detail"),
    path("clients/<int:client_id>/edit/", client_edit_view, name="client_edit"),
    path("clients/<int:client_id>/accounts/new/", client_account_create_view, name="client_account_create"),
    path("clients/<int:client_id>/notes/new/", client_note_create_view, name="client_note_create"),
]
