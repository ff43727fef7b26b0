"""The schema generator of every API view (REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]).

Kept apart from the schema views: DRF reads this class while drf-spectacular's views are being
defined, so the two in one module would import each other.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    """401, 403, 404 and other refusals: one sentence."""

    detail = serializers.CharField()


class TooManyRequestsSerializer(serializers.Serializer):
    """429: the same thing was asked for too recently (api.errors.TooManyRequests)."""

    detail = serializers.CharField()
    code = serializers.CharField(help_text="e.g. asked_recently")
    retry_after = serializers.IntegerField(min_value=1, help_text="Seconds to wait, as in the Retry-After header")


def too_many_requests(description: str):
    """The 429 response of an operation that is rate-limited, and its Retry-After header, for
    `extend_schema(responses={..., 429: ...}, parameters=[...])`."""
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

    return (OpenApiResponse(response=TooManyRequestsSerializer, description=description),
            OpenApiParameter("Retry-After", int, location=OpenApiParameter.HEADER, response=[429], required=True,
                             description="Seconds until the operation may be asked again"))


# A 400 names each bad field (or `non_field_errors`) with its messages; nested bodies nest.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Each bad field (or `non_field_errors`, or a query parameter) with its messages.",
    "additionalProperties": {},
}


class ImaliAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, made true to what the views answer.

    - An integer in the query is 0 to MAX_QUERY_ID (ids: `api.base.query_int`).
    - Every operation documents its refusals: 400 when it takes a body or query parameters or writes,
      413 and 415 when it takes a body, 401 and 403 when it needs a caller, 404 when it looks an object up by path.
    - A text field that may be blank says so: `""` joins an enum, a `format` (email, uri) that
      "" cannot meet is dropped, and a nullable model column is `nullable` even where the
      serializer field is read-only (DRF drops `allow_blank`/`allow_null` from those).
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        from .base import MAX_QUERY_ID  # base is read while DRF's generics load: not at import

        responses = operation.setdefault("responses", {})
        parameters = operation.get("parameters", [])
        for parameter in parameters:
            # Ids in the query (client, loan, user, branch) are read by `api.base.query_int`: digits
            # only, at most a database id. (Paging parameters say their own bounds.)
            if (parameter.get("in") == "query" and parameter.get("schema", {}).get("type") == "integer"
                    and parameter["name"] not in ("limit", "offset")):
                parameter["schema"].setdefault("minimum", 0)
                parameter["schema"].setdefault("maximum", MAX_QUERY_ID)
        # A write may be refused by its service (a state, a rule) with a 400 even without a body.
        takes_input = ("requestBody" in operation or any(p.get("in") == "query" for p in parameters)
                       or method.upper() in ("POST", "PUT", "PATCH", "DELETE"))
        if takes_input:
            responses.setdefault("400", {"content": {"application/json": {"schema": VALIDATION_ERROR_SCHEMA}},
                                         "description": "The request is not valid; each field says why."})
        if "requestBody" in operation:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
            uploads = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
            responses.setdefault("413", self._error_response(
                f"The body is larger than {limit:.1f} MB (files aside), or a multipart upload larger than {uploads:.0f} MB."))
            # DRF answers a body of a media type the operation does not read (or none named) with 415.
            responses.setdefault("415", self._error_response("The body is not of a media type this operation reads."))
        needs_caller = any(requirement for requirement in operation.get("security", []))
        refusals = {"401": "No valid credentials (a bad or expired token).",
                    "403": "Not signed in, no right for this operation, or a switched-off entity."}
        if needs_caller:
            for code, text in refusals.items():
                responses.setdefault(code, self._error_response(text))
        # An object named by path, or by id in the body (a client, a loan), may not be in the entity.
        if any(p.get("in") == "path" for p in parameters) or (needs_caller and "requestBody" in operation):
            responses.setdefault("404", self._error_response("No such object in your entity."))
        return operation

    def _get_request_for_media_type(self, serializer, direction="request"):
        # drf-spectacular makes every PATCH body partial (nothing required), as a viewset's
        # partial_update reads it; a view whose PATCH validates the whole body says so with
        # `patch_takes_whole_body`, and its schema then requires what it requires.
        if self.method == "PATCH" and getattr(self.view, "patch_takes_whole_body", False):
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def _error_response(self, description: str) -> dict:
        component = self.resolve_serializer(ErrorDetailSerializer, "response")
        return {"content": {"application/json": {"schema": component.ref}}, "description": description}

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        result = super()._map_serializer_field(field, direction, bypass_extensions)
        if _blank_allowed(field) and result.get("type") == "string" and "enum" in result and "" not in result["enum"]:
            result["enum"] = [*result["enum"], ""]
        model_field = _model_field_of(field)
        if model_field is not None and model_field.null and field.read_only and "$ref" not in result:
            result["nullable"] = True
        return result

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        # drf-spectacular offers "" beside a format only for fields with allow_blank, which DRF
        # takes off read-only fields; a blank column reads back as "" all the same.
        if (not getattr(field, "allow_blank", False) and _blank_allowed(field) and schema.get("type") == "string"
                and {"format", "pattern", "minLength"} & schema.keys()):
            outer = {"readOnly", "writeOnly", "nullable", "deprecated", "description", "title"}
            inner = {key: schema.pop(key) for key in list(schema) if key not in outer}
            schema["oneOf"] = [inner, {"type": "string", "maxLength": 0}]


def _blank_allowed(field) -> bool:
    if getattr(field, "allow_blank", False):
        return True
    model_field = _model_field_of(field)
    return bool(model_field is not None and model_field.blank
                and isinstance(model_field, models.CharField | models.TextField))


def _model_field_of(field):
    """The model column a ModelSerializer field reads, or None."""
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    source = getattr(field, "source", None)
    if model is None or not source or "." in source or source == "*":
        return None
    try:
        found = model._meta.get_field(source)
    except FieldDoesNotExist:
        return None
    return found if isinstance(found, models.Field) else None  # not a reverse relation
