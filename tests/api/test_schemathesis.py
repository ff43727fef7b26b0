"""Every API operation against the OpenAPI schema, with schemathesis.

The schema is the one `/api/schema/` serves (built by the same generator, in-process), and each
operation is called through the WSGI app (no socket) with a token of an administrator holding
every right of an entity with a book of every kind. Examples are few and the run is
derandomised, so CI sees the same cases every time; a failure means the schema and the app
disagree. Writes stay inside the test database: SMS only reach the outbox.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.core.serializers.json import DjangoJSONEncoder
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from imali.messaging.credits import credits_assign
from tests import factories
from tests.isolation_book import build_book

pytestmark = [pytest.mark.schemathesis, pytest.mark.django_db]

MAX_EXAMPLES = 4
# Not `positive_data_acceptance`: a schema cannot say that an ID number's check digit must be
# right or that a loan must exist, so schema-valid bodies are often (rightly) refused with a 400.
# `unsupported_method`, `allow_header_conformance` and `missing_required_header` judge the coverage
# phase's undeclared methods and missing headers; `use_after_free` and `ensure_resource_availability`
# act when a run chains calls (a deleted or created object read back) and cost nothing otherwise.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
    checks.unsupported_method,
    checks.allow_header_conformance,
    checks.missing_required_header,
    checks.use_after_free,
    checks.ensure_resource_availability,
]


def _served_schema() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(generated, cls=DjangoJSONEncoder))


# The client's ~40-field body makes the coverage phase (every boundary of every field) run for
# half a minute per operation; those three are fuzzed only, the rest get both phases.
BIG_BODIES = ["POST /api/clients/", "PUT /api/clients/{client_id}/", "PATCH /api/clients/{client_id}/"]


def _schema(*, coverage: bool):
    loaded = schemathesis.openapi.from_dict(_served_schema())
    loaded.app = get_wsgi_application()
    # The token is the one credential sent; generated cookies or headers would only muddle the auth check.
    loaded.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, no_shrink=True,
                                    with_security_parameters=False)
    loaded.config.phases.coverage.enabled = coverage
    return loaded


schema = _schema(coverage=True).exclude(name=BIG_BODIES)
big_bodies = _schema(coverage=False).include(name=BIG_BODIES)


@pytest.fixture(autouse=True)
def connection_kept_between_requests():
    """Django closes the database connection when a request finishes; in-process calls share the
    test's connection (and its transaction), so it must stay open, as Django's test client
    arranges for its own requests."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def module_book(django_db_setup, django_db_blocker):
    """One book for the whole module (it takes seconds to build, and ~140 operations use it), inside an
    outer transaction rolled back at the end; each test's own transaction nests in it as a savepoint,
    so what one case writes is gone before the next test, as with a book per test."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            entity = factories.make_entity(country="ZA")
            book = build_book(entity, marker="Schemathesis")
            credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100_000)
            headers = {"Authorization": f"Token {Token.objects.create(user=book['admin']).key}"}
            yield headers
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def auth_headers(db, module_book):
    return module_book


def test_the_schema_checked_is_the_one_served(auth_headers, client):
    served = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=auth_headers["Authorization"])
    assert served.status_code == 200
    assert served.json() == _served_schema()


HYPOTHESIS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))


@schema.parametrize()
@HYPOTHESIS
def test_every_operation_answers_as_its_schema_says(case, auth_headers):
    case.call_and_validate(headers=auth_headers, checks=CHECKS)


@big_bodies.parametrize()
@HYPOTHESIS
def test_the_client_writes_answer_as_their_schema_says(case, auth_headers):
    case.call_and_validate(headers=auth_headers, checks=CHECKS)


def test_chained_calls_follow_the_links_between_operations(auth_headers):
    """The stateful run over the links schemathesis infers (a created object's id into its reads,
    changes and actions): a few short derandomised scenarios, with the checks above. `ignored_auth`
    is left to the operation tests, which send the token as explicit auth; here it rides on each case."""
    base = schema.as_state_machine()
    assert base.bundles, "schemathesis inferred no links between operations"
    chained_checks = [check for check in CHECKS if check is not checks.ignored_auth]

    class Chained(base):
        def before_call(self, case):
            case.headers = {**(case.headers or {}), **auth_headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=chained_checks, transport_kwargs=kwargs or None,
                                   recorder=getattr(self, "recorder", None))

    Chained.run(settings=settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                                  stateful_step_count=5, suppress_health_check=list(HealthCheck)))
