"""Clients, employers and paypoints of the caller's entity.

Reads filter by the caller's entity; writes go through imali.clients.services, which validate,
write in one transaction and audit. A service's ValidationError becomes a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from imali.api.base import EntityScopedMixin
from imali.api.serializers.clients import (
    ClientSerializer,
    ClientWriteSerializer,
    EmployerSerializer,
    EmployerWriteSerializer,
    PaypointSerializer,
    PaypointWriteSerializer,
)
from imali.clients.models import Client, Employer
from imali.clients.selectors import client_search, employer_list
from imali.clients.services import (
    client_create,
    client_update,
    employer_create,
    employer_update,
    paypoint_create,
)
from imali.tenancy.rights import Right

# A search finds a client to open, so it returns the best matches, not the whole book.
CLIENT_SEARCH_LIMIT = 200
WRITE_ACTIONS = frozenset({"create", "update", "partial_update"})
# OPTIONS describes the body of a write while the action is "metadata".
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})

BAD_INPUT = OpenApiResponse(description="Bad input: the body maps each field at fault to its messages.")
NO_RIGHT = OpenApiResponse(description="Not signed in, no entity, or the caller lacks the right.")
NOT_FOUND = OpenApiResponse(description="No such record in the caller's entity.")


def _full_replacement(serializer, model: type[models.Model]) -> dict[str, Any]:
    """For PUT: every writable field the body left out goes back to the model's default."""
    defaults = {}
    for name in serializer.fields:
        field = model._meta.get_field(name)
        if field.has_default():
            defaults[name] = field.get_default()
        elif field.null:
            defaults[name] = None
        elif field.blank:
            defaults[name] = ""
    return {**defaults, **serializer.validated_data}


@extend_schema_view(
    list=extend_schema(
        summary="List or search clients",
        description=(
            "Clients of your entity, by client number. With `search`, the best matches "
            f"(at most {CLIENT_SEARCH_LIMIT}) for a client number, ID number, cellphone, surname, "
            "or first name and surname. Needs 'Clients: view and search'."
        ),
        parameters=[
            OpenApiParameter(
                "search", str, description="Client number, ID number, cellphone, surname, or 'name surname'."
            )
        ],
        responses={200: ClientSerializer(many=True), 403: NO_RIGHT},
    ),
    retrieve=extend_schema(
        summary="Read a client",
        description="One client of your entity with every stored field. Needs 'Clients: view and search'.",
        responses={200: ClientSerializer, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
    create=extend_schema(
        summary="Create a client",
        description=(
            "Capture a new client; the next client number of your entity is assigned. Phones are "
            "stored in E.164, SA ID numbers are checked against date of birth and gender, and "
            "branch, employer, paypoint and salesperson must be your entity's. On any error "
            "nothing is written. Audited. Needs 'Clients: create and edit'."
        ),
        request=ClientWriteSerializer,
        responses={201: ClientSerializer, 400: BAD_INPUT, 403: NO_RIGHT},
    ),
    update=extend_schema(
        summary="Replace a client's details",
        description=(
            "Replace every editable field: fields left out return to their defaults (empty, "
            "none, or the model default). Same checks as create; audited with before and after. "
            "Needs 'Clients: create and edit'."
        ),
        request=ClientWriteSerializer,
        responses={200: ClientSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change some of a client's details",
        description=(
            "Change only the fields given; the result is checked as a whole, as on create. "
            "Audited with before and after. Needs 'Clients: create and edit'."
        ),
        request=ClientWriteSerializer,
        responses={200: ClientSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
)
class ClientViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ClientSerializer
    lookup_url_kwarg = "client_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {
        "list": Right.VIEW_CLIENTS,
        "retrieve": Right.VIEW_CLIENTS,
        "create": Right.MANAGE_CLIENTS,
        "update": Right.MANAGE_CLIENTS,
        "partial_update": Right.MANAGE_CLIENTS,
    }

    def get_queryset(self):
        if self.action == "list":
            search = self.request.query_params.get("search", "").strip()
            if search:
                return client_search(entity=self.entity, query=search, limit=CLIENT_SEARCH_LIMIT)
            return Client.objects.filter(entity=self.entity).order_by("number")
        # One row: the service reads the client's references, so fetch them with it.
        return Client.objects.filter(entity=self.entity).select_related("branch", "employer", "paypoint", "salesperson")

    def get_serializer_class(self):
        if self.action in WRITE_ACTIONS or self.request.method in WRITE_METHODS:
            return ClientWriteSerializer
        return ClientSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client = client_create(
            entity=self.entity, actor=request.user, data=dict(serializer.validated_data), ip_address=self.ip_address
        )
        return Response(ClientSerializer(client).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        client = self.get_object()
        serializer = self.get_serializer(client, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data) if partial else _full_replacement(serializer, Client)
        client = client_update(client=client, actor=request.user, data=data, ip_address=self.ip_address)
        return Response(ClientSerializer(client).data)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)


@extend_schema_view(
    list=extend_schema(
        summary="List employers",
        description="Employers of your entity by name, each with its paypoints. Needs 'Clients: view and search'.",
        responses={200: EmployerSerializer(many=True), 403: NO_RIGHT},
    ),
    retrieve=extend_schema(
        summary="Read an employer",
        description="One employer of your entity with its paypoints. Needs 'Clients: view and search'.",
        responses={200: EmployerSerializer, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
    create=extend_schema(
        summary="Create an employer",
        description=(
            "Add an employer; its name must be new in your entity (ignoring case). The telephone "
            "is stored in E.164. Audited. Needs 'Employers: create and edit'."
        ),
        request=EmployerWriteSerializer,
        responses={201: EmployerSerializer, 400: BAD_INPUT, 403: NO_RIGHT},
    ),
    update=extend_schema(
        summary="Replace an employer's details",
        description=(
            "Replace every field; telephone and address left out become empty. Audited. "
            "Needs 'Employers: create and edit'."
        ),
        request=EmployerWriteSerializer,
        responses={200: EmployerSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change some of an employer's details",
        description="Change only the fields given. Audited. Needs 'Employers: create and edit'.",
        request=EmployerWriteSerializer,
        responses={200: EmployerSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
    paypoints=extend_schema(
        summary="Add a paypoint to an employer",
        description=(
            "A paypoint (where the employer pays its staff) with a number new for this employer. "
            "Audited. Needs 'Employers: create and edit'."
        ),
        request=PaypointWriteSerializer,
        responses={201: PaypointSerializer, 400: BAD_INPUT, 403: NO_RIGHT, 404: NOT_FOUND},
    ),
)
class EmployerViewSet(EntityScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = EmployerSerializer
    lookup_url_kwarg = "employer_id"
    lookup_value_regex = r"[0-9]+"
    required_rights = {
        "list": Right.VIEW_CLIENTS,
        "retrieve": Right.VIEW_CLIENTS,
        "create": Right.MANAGE_EMPLOYERS,
        "update": Right.MANAGE_EMPLOYERS,
        "partial_update": Right.MANAGE_EMPLOYERS,
        "paypoints": Right.MANAGE_EMPLOYERS,
    }

    def get_queryset(self):
        return employer_list(entity=self.entity)

    def get_serializer_class(self):
        if self.action == "paypoints":
            return PaypointWriteSerializer
        if self.action in WRITE_ACTIONS or self.request.method in WRITE_METHODS:
            return EmployerWriteSerializer
        return EmployerSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        employer = employer_create(entity=self.entity, actor=request.user, data=dict(serializer.validated_data))
        return Response(EmployerSerializer(employer).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        employer = self.get_object()
        serializer = self.get_serializer(employer, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        if partial:
            # The service checks the employer as a whole, so it gets every field.
            current = {name: getattr(employer, name) for name in serializer.fields}
            data = {**current, **serializer.validated_data}
        else:
            data = _full_replacement(serializer, Employer)
        employer = employer_update(employer=employer, actor=request.user, data=data)
        return Response(EmployerSerializer(employer_list(entity=self.entity).get(pk=employer.pk)).data)

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    @action(detail=True, methods=["post"])
    def paypoints(self, request, *args, **kwargs):
        employer = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        paypoint = paypoint_create(employer=employer, actor=request.user, **serializer.validated_data)
        return Response(PaypointSerializer(paypoint).data, status=status.HTTP_201_CREATED)


router = SimpleRouter(trailing_slash=True)
router.register("clients", ClientViewSet, basename="client")
router.register("employers", EmployerViewSet, basename="employer")

urlpatterns = router.urls
