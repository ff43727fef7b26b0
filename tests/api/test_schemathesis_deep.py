"""The schemathesis run of test_schemathesis.py, much deeper: opt-in, not part of `make test`.

    IMALI_SCHEMATHESIS_DEEP=200 .venv/bin/python -m pytest tests/api/test_schemathesis_deep.py -q

runs every operation with that many fuzzed examples per operation (not derandomised: each run
sees new cases), positive and negative, as an administrator holding every right and as a clerk
holding two (`IMALI_SCHEMATHESIS_CALLER=admin|clerk|both`, default both), with every check of the
CI run plus `positive_data_acceptance` when `IMALI_SCHEMATHESIS_POSITIVE=1` (informative only: a
schema cannot say that an ID number's check digit must be right), and the stateful run over the
links schemathesis infers. `IMALI_SCHEMATHESIS_COVERAGE=1` adds the coverage phase (the CI run
already has it, derandomised). Failures are what the CI run would call failures.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from imali.tenancy.rights import Right
from tests import factories
from tests.api.test_schemathesis import (
    CHECKS,
    _served_schema,
    connection_kept_between_requests,  # noqa: F401
)
from tests.api.test_schemathesis import module_book as admin_book  # noqa: F401

DEEP = int(os.environ.get("IMALI_SCHEMATHESIS_DEEP") or 0)
CALLER = os.environ.get("IMALI_SCHEMATHESIS_CALLER", "both")
POSITIVE = os.environ.get("IMALI_SCHEMATHESIS_POSITIVE") == "1"
COVERAGE = os.environ.get("IMALI_SCHEMATHESIS_COVERAGE") == "1"
ONLY = os.environ.get("IMALI_SCHEMATHESIS_ONLY")  # a regex on the operation's label

pytestmark = [
    pytest.mark.schemathesis,
    pytest.mark.django_db,
    pytest.mark.skipif(not DEEP, reason="the deep run is opt-in: IMALI_SCHEMATHESIS_DEEP=<examples>"),
]

DEEP_CHECKS = CHECKS + ([checks.positive_data_acceptance] if POSITIVE else [])


def _schema():
    loaded = schemathesis.openapi.from_dict(_served_schema())
    loaded.app = get_wsgi_application()
    loaded.config.generation.update(max_examples=max(DEEP, 1), deterministic=False, no_shrink=False,
                                    with_security_parameters=False)
    loaded.config.phases.coverage.enabled = COVERAGE
    if ONLY:
        loaded = loaded.include(name_regex=ONLY)
    return loaded


schema = _schema()

DEEP_SETTINGS = settings(max_examples=max(DEEP, 1), deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def clerk_book(admin_book, django_db_blocker):  # noqa: F811
    """A user of the same entity holding only client rights: most operations answer 403."""
    from imali.tenancy.models import User

    with django_db_blocker.unblock():
        admin = User.objects.get(auth_token__key=admin_book["Authorization"].split()[1])
        user = factories.make_user(entity=admin.entity, rights=[Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS])
        yield {"Authorization": f"Token {Token.objects.create(user=user).key}"}


CALLERS = {"admin": ["admin"], "clerk": ["clerk"], "both": ["admin", "clerk"]}[CALLER]


@pytest.fixture(params=CALLERS)
def auth_headers(request, db, admin_book):  # noqa: F811
    if request.param == "admin":
        return admin_book
    return request.getfixturevalue("clerk_book")


@schema.parametrize()
@DEEP_SETTINGS
def test_every_operation_deeply(case, auth_headers):
    case.call_and_validate(headers=auth_headers, checks=DEEP_CHECKS)


def test_stateful_links(admin_book):  # noqa: F811
    base = schema.as_state_machine()
    assert base.bundles, "schemathesis inferred no links between operations"

    class Machine(base):
        def before_call(self, case):
            case.headers = {**(case.headers or {}), **admin_book}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # ignored_auth takes a header set on the case for generated auth; the fuzzed run checks it.
            case.validate_response(response, checks=[c for c in DEEP_CHECKS if c is not checks.ignored_auth], transport_kwargs=kwargs or None,
                                   recorder=getattr(self, "recorder", None))

    Machine.run(settings=settings(max_examples=max(DEEP // 4, 1), deadline=None, database=None,
                                  stateful_step_count=6, suppress_health_check=list(HealthCheck)))
