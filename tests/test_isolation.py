"""Entity isolation, proven over every route the product has.

Every URL pattern of the web app and the API is discovered from the resolver. Each route that
names an object (kwargs `<model_name>_id`) is called with the id of an object of ANOTHER entity,
by a user holding every right in their own entity: every method must answer 403, 404 or 405 —
never a page, a redirect, a validation error — and nothing of the other entity may change. Every
list route must not show the other entity's data. Routes added later are covered automatically;
a route whose object kwarg cannot be resolved fails the test with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.apps import apps
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from imali.core.models import AuditEntry
from tests import factories
from tests.isolation_book import MARKER, build_book

pytestmark = pytest.mark.django_db

SKIP_PREFIXES = ("static/", "api/schema", "api/docs")
ALLOWED = {403, 404, 405}
METHODS = ("get", "post", "put", "patch", "delete")


def _routes(resolver=None, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, list[str]]]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _routes(entry, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            route = prefix + str(entry.pattern)
            kwargs = list(entry.pattern.regex.groupindex)
            # Include kwargs captured by enclosing resolvers.
            outer = re.findall(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>", prefix)
            for names in outer:
                for name in names:
                    if name and name not in kwargs:
                        kwargs.append(name)
            yield route, (f"{namespace}{entry.name}" if entry.name else ""), kwargs


def _model_for_kwarg(kwarg: str) -> type[models.Model]:
    assert kwarg.endswith("_id"), f"object kwarg '{kwarg}' must be named <model_name>_id"
    wanted = kwarg[: -len("_id")]
    matches = [m for m in apps.get_models() if m._meta.model_name == wanted]
    assert len(matches) == 1, f"kwarg '{kwarg}' names {len(matches)} models; it must name exactly one"
    return matches[0]


def _entity_path(model: type[models.Model], depth: int = 0) -> str | None:
    """The ORM path from `model` to its owning Entity, following foreign keys."""
    if model._meta.label == "tenancy.Entity":
        return "pk"
    names = [f.name for f in model._meta.concrete_fields]
    if "entity" in names:
        return "entity"
    if depth >= 3:
        return None
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey) and not field.null:
            sub = _entity_path(field.related_model, depth + 1)
            if sub:
                return f"{field.name}__{sub}" if sub != "pk" else field.name
    return None


# The platform's own rows, which no entity owns (the operator's SMS gateways and their routes):
# the same object whoever asks; only the operator's screens show them.
PLATFORM_OWNED = {"messaging.Gateway", "messaging.Route"}


def _platform_object(model: type[models.Model]) -> models.Model:
    from imali.messaging.models import Gateway, Route

    gateway, _ = Gateway.objects.get_or_create(name="isolation", defaults={"host": "10.0.0.5", "port": 2775,
                                                                           "system_id": "imali", "password": "secret"})
    route = Route.objects.filter(gateway=gateway).first() or Route.objects.create(gateway=gateway, country="ZA")
    return gateway if model is Gateway else route


def _object_of(model: type[models.Model], entity) -> models.Model:
    if model._meta.label in PLATFORM_OWNED:
        return _platform_object(model)
    path = _entity_path(model)
    assert path, f"{model._meta.label} has no foreign-key path to an entity"
    obj = model._default_manager.filter(**{path: entity.pk}).order_by("pk").first()
    assert obj is not None, (
        f"no {model._meta.label} of the other entity exists to test; "
        f"add it in the app's testing.isolation_objects builder"
    )
    return obj


def _url_for(route: str, name: str, values: dict[str, str]) -> str:
    if name:
        kwargs = {k: v for k, v in values.items() if f"<{k}>" in route or f":{k}>" in route}
        return reverse(name, kwargs=kwargs)
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], route)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], url)
    url = url.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + url.lstrip("/")


@pytest.fixture
def setting(client):
    mine = factories.make_entity(country="ZA")
    # South African too: the book holds payment-stream objects (DebiCheck, NAEDO notes), which only a
    # South African lender has; their client has a number of its own, as another lender's would.
    theirs = factories.make_entity(country="ZA")
    book = build_book(theirs, cellphone="083 987 6543")
    build_book(mine, marker="Mineowned")
    me = factories.make_admin(entity=mine)
    client.force_login(me)
    return client, mine, theirs, book


def test_every_object_route_refuses_another_entitys_objects(setting):
    client, mine, theirs, book = setting
    tried, failures = 0, []
    audit_before = AuditEntry.objects.filter(entity=theirs).count()
    for route, name, kwargs in _routes():
        if route.startswith(SKIP_PREFIXES):
            continue
        object_kwargs = [k for k in kwargs if k != "format"]
        if not object_kwargs:
            continue
        values = {"format": "json"}
        own_values = {"format": "json"}
        for kwarg in object_kwargs:
            model = _model_for_kwarg(kwarg)
            values[kwarg] = str(_object_of(model, theirs).pk)
            own_values[kwarg] = str(_object_of(model, mine).pk)
        url = _url_for(route, name, values)
        # Control: the same route with our own object must exist, or a 404 below proves nothing.
        own_status = client.get(_url_for(route, name, own_values)).status_code
        if own_status == 404:
            failures.append(f"{_url_for(route, name, own_values)} ({name}): 404 for our own object; the test builds the URL wrong")
        statuses = {}
        for method in METHODS:
            response = getattr(client, method)(url, data={} if method in ("get", "post") else "{}", **(
                {} if method in ("get", "post") else {"content_type": "application/json"}))
            statuses[method] = response.status_code
        tried += 1
        if not set(statuses.values()) <= ALLOWED or set(statuses.values()) == {405}:
            failures.append(f"{url} ({name}): {statuses}")
    assert tried >= 5, f"only {tried} object routes found"
    assert not failures, "routes that answered with another entity's object:\n" + "\n".join(failures)
    assert AuditEntry.objects.filter(entity=theirs).count() == audit_before, "the other entity's data changed"


def test_no_list_route_shows_another_entitys_data(setting):
    client, mine, theirs, book = setting
    checked, leaks = 0, []
    for route, name, kwargs in _routes():
        if route.startswith(SKIP_PREFIXES) or [k for k in kwargs if k != "format"]:
            continue
        url = _url_for(route, name, {})
        # Search by a prefix of the marker: a leak shows the whole marker, an echo of the query does not.
        prefix = MARKER[:7]
        for query in ("", f"?q={prefix}", f"?search={prefix}"):
            response = client.get(url + query)
            checked += 1
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if MARKER.lower().encode() in body.lower():
                leaks.append(f"{url}{query} ({name}) status {response.status_code}")
    assert checked >= 5
    assert not leaks, "pages that show another entity's data:\n" + "\n".join(leaks)
