import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from imali.api.endpoints import auth, clients
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client, entity):
    """A browser signed in as a user of the entity with no particular right: the schema and the
    docs are for anyone who may use the API, and they describe the API, not anyone's data."""
    client.force_login(factories.make_user(entity=entity))
    return client


def test_schema_and_docs_are_for_signed_in_users_only(entity):
    from django.test import Client
    from rest_framework.test import APIClient

    anonymous = Client()
    schema = anonymous.get("/api/schema/")
    assert schema.status_code == 401
    assert schema["WWW-Authenticate"] == "Token"
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302
    assert docs["Location"] == "/login/?next=/api/docs/"
    assert anonymous.get("/api/docs/", HTTP_AUTHORIZATION="Token not-a-token").status_code == 401

    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    token = APIClient().post("/api/auth/token/", {"username": user.username, "password": "correct-horse-battery"},
                             format="json").json()["token"]
    program = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert program.get("/api/schema/").status_code == 200
    assert program.get("/api/docs/").status_code == 200


def test_schema_is_valid_openapi_describing_the_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/vnd.oai.openapi+json") else yaml.safe_load(response.content)
    validate_schema(schema)
    paths = schema["paths"]
    for url in ("/api/clients/", "/api/clients/{client_id}/", "/api/employers/", "/api/employers/{employer_id}/",
                 "/api/employers/{employer_id}/paypoints/", "/api/auth/token/"):
        assert url in paths, url
        for operation in paths[url].values():
            assert operation.get("description") and operation.get("summary"), (url, operation["operationId"])
    # Signing in needs no credentials; everything else takes a token or a session.
    assert paths["/api/auth/token/"]["post"].get("security", []) in ([], [{}])
    assert paths["/api/clients/"]["get"]["security"] == [{"cookieAuth": []}, {"tokenAuth": []}]
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    client_schema = schema["components"]["schemas"]["Client"]
    assert {"number", "id_number", "cellphone", "branch", "employer", "paypoint", "salesperson"} <= set(client_schema["properties"])


def test_docs_page_uses_only_local_static_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page loads no scripts or styles"
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    assert not re.search(r"https?://", html.replace("http://www.w3.org", "")), "the page points off the machine"
    local = [a for a in assets if a.startswith("/static/")]
    assert any(a.endswith(".js") for a in local) and any(a.endswith(".css") for a in local)
    for asset in local:
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not shipped"
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content) if served.streaming else served.content


def test_schema_of_these_endpoints_generates_without_warnings():
    """`manage.py spectacular --validate --fail-on-warn` over the client, employer and token
    endpoints. (Warnings from choice sets shared with other domains' endpoints are settled by
    SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].)"""
    patterns = [path("api/", include(([*clients.urlpatterns, *auth.urlpatterns], "api")))]
    reset_generator_stats()
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, "drf-spectacular warned; see the captured output"
    assert len(schema["paths"]) == 6
