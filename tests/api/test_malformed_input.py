"""Huge and malformed request bodies: each a clear 400 or 413 in JSON naming the problem, nothing
written, never a 500."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import get_resolver
from rest_framework import parsers as drf_parsers
from rest_framework.views import APIView

from imali.api import parsers
from imali.clients.models import Employer
from imali.tenancy.rights import Right


@pytest.fixture
def employer_clerk(entity, signed_in):
    return signed_in(entity, [Right.VIEW_CLIENTS, Right.MANAGE_EMPLOYERS])


def post_raw(api, path: str, body: bytes, content_type: str = "application/json"):
    return api.generic("POST", path, body, content_type=content_type)


@pytest.mark.parametrize("body", [
    "[" * 10_000 + "]" * 10_000,
    '{"name": ' * 10_000 + "1" + "}" * 10_000,
    # Under Python's own recursion limit, but deeper than any body of ours.
    '{"name": ' + "[" * 500 + "]" * 500 + "}",
], ids=["array-10000", "object-10000", "array-500"])
def test_a_deeply_nested_body_is_a_400_not_a_500(employer_clerk, body):
    response = post_raw(employer_clerk, "/api/employers/", body.encode())
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert f"nested more than {parsers.MAX_DEPTH} levels" in response.json()["detail"]
    assert not Employer.objects.exists()


def test_a_body_nested_a_few_levels_is_read(employer_clerk):
    nested = '{"name": "Acme", "x": ' + "[" * (parsers.MAX_DEPTH - 1) + "]" * (parsers.MAX_DEPTH - 1) + "}"
    response = post_raw(employer_clerk, "/api/employers/", nested.encode())
    assert response.status_code in (201, 400)
    assert "nested" not in str(response.json())


def test_a_body_over_the_upload_limit_is_a_413_in_json(employer_clerk, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = b'{"name": "' + b"x" * (65 * 1024) + b'"}'
    response = post_raw(employer_clerk, "/api/employers/", body)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than 0.1 MB" in response.json()["detail"]
    assert not Employer.objects.exists()


def test_a_form_with_too_many_fields_is_a_400_in_json(employer_clerk, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=1" for i in range(20)).encode()
    response = post_raw(employer_clerk, "/api/employers/", body, "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]


def _api_views():
    def walk(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns)
            else:
                view = getattr(pattern.callback, "cls", None)
                if view is not None and issubclass(view, APIView):
                    yield view

    return set(walk(get_resolver().url_patterns))


def test_every_api_view_reads_json_through_the_bounded_parser():
    lax = sorted(view.__name__ for view in _api_views() for parser in view.parser_classes
                 if issubclass(parser, drf_parsers.JSONParser) and not issubclass(parser, parsers.JSONParser))
    assert lax == []


@pytest.fixture
def everything(entity, signed_in):
    return signed_in(entity, list(Right))


@pytest.mark.parametrize(("method", "path", "field"), [
    ("POST", "/api/receipts/", "amount"),
    ("POST", "/api/receipts/", "payback_type"),
    ("PUT", "/api/signing/setup/", "threshold"),
    ("PUT", "/api/reminders/automatic/arrears/", "arrears_minimum"),
    ("POST", "/api/employers/", "name"),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(everything, method, path, field):
    # Quoted back in a refusal ("'\ud800' is not an amount"), it could not be encoded: a 500.
    body = b'{"' + field.encode() + b'": "12\\ud800"}'
    response = everything.generic(method, path, body, content_type="application/json")
    assert response.status_code == 400
    assert "surrogate" in " ".join(response.json()[field])


def test_a_lone_surrogate_in_a_key_or_deep_in_a_list_is_a_400(everything):
    in_key = everything.generic("PUT", "/api/reminders/mis/", b'{"x\\udfff": 1}', content_type="application/json")
    assert in_key.status_code == 400 and "surrogate" in str(in_key.json())
    deep = everything.generic("PUT", "/api/reminders/mis/", b'{"monthly_recipients": [["\\ud800"]]}',
                              content_type="application/json")
    assert deep.status_code == 400 and "surrogate" in " ".join(deep.json()["monthly_recipients"])


def test_a_nul_byte_in_a_text_field_is_a_400_naming_it(employer_clerk):
    response = employer_clerk.post("/api/employers/", {"name": "Acme\x00Ltd"}, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert not Employer.objects.exists()


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"name": "\xff\xfe"}', "application/json", 400),  # not UTF-8
    (b"<employer><name>Acme</name></employer>", "application/xml", 415),
    (b"name: Acme", "text/plain", 415),
])
def test_bodies_that_are_not_json_are_refused_in_json(employer_clerk, body, content_type, status):
    response = post_raw(employer_clerk, "/api/employers/", body, content_type)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json" and response.json()["detail"]
    assert not Employer.objects.exists()


def _json_operations():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json") if isinstance(operation, dict) else None
            if body is None or path == "/api/auth/token/":
                continue
            ref = body["schema"].get("$ref", "")
            properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            texts = [name for name, field in properties.items() if not field.get("readOnly")]
            yield method.upper(), re.sub(r"\{[a-z_]+\}", "1", path), texts


HOSTILE = {
    "nested": lambda texts: b"[" * 10_000 + b"]" * 10_000,
    "surrogates": lambda texts: ("{" + ",".join(f'"{name}": "x\\ud800"' for name in texts) + "}").encode(),
    "nul": lambda texts: json.dumps({name: "x\x00y" for name in texts}).encode(),
    "not-utf-8": lambda texts: b'{"a": "\xff\xfe"}',
}


def test_every_json_operation_refuses_hostile_bodies_in_json_never_a_500(everything):
    """Every operation taking JSON, with every field of its body at once: never a 500, always a
    JSON answer (a 400, or the 403/404/405 it gives before reading a body)."""
    operations = list(_json_operations())
    assert len(operations) > 40
    wrong = []
    for method, path, texts in operations:
        for label, make in HOSTILE.items():
            response = everything.generic(method, path, make(texts), content_type="application/json")
            if response.status_code >= 500 or response.status_code < 400 \
                    or response.get("Content-Type") != "application/json":
                wrong.append((method, path, label, response.status_code))
    assert wrong == []


def test_a_huge_address_is_refused_naming_it_and_nothing_is_written(employer_clerk, entity, clerk):
    from tests.api.conftest import client_payload

    huge = "A" * 2_000_000  # under the 2.5 MB body limit: the field's own ceiling refuses it
    employer = employer_clerk.post("/api/employers/", {"name": "Acme", "classification": "government",
                                                       "economic_sector": "agriculture", "address": huge}, format="json")
    assert employer.status_code == 400 and "At most 500 characters" in employer.json()["address"][0]
    assert not Employer.objects.exists()
    made = clerk.post("/api/clients/", client_payload(entity, physical_address=huge, notes="n" * 4001), format="json")
    assert made.status_code == 400 and set(made.json()) == {"physical_address", "notes"}


@pytest.mark.parametrize("content_type", ["text/plain", ""])
def test_a_body_of_another_media_type_is_a_415_every_body_taking_operation_documents(employer_clerk, content_type):
    """Schemathesis (deep run): a garbled multipart body came as no media type at all, and the 415
    DRF answers was in no operation's responses."""
    response = post_raw(employer_clerk, "/api/employers/", b"name=Acme", content_type=content_type)
    assert response.status_code == 415
    assert response["Content-Type"] == "application/json" and "detail" in response.json()
    assert not Employer.objects.exists()
    schema = employer_clerk.get("/api/schema/?format=json").json()
    taking_bodies = [(path, method, operation) for path, item in schema["paths"].items()
                     for method, operation in item.items() if "requestBody" in operation]
    assert taking_bodies
    assert [(path, method) for path, method, operation in taking_bodies if "415" not in operation["responses"]] == []
