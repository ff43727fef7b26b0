"""Shared fixtures, and the rule for outside services: under CI=true a missing one fails the run;
on a developer's machine the tests that need it skip with a one-line reason."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import HealthCheck, settings

from tests import factories

# Properties are about values, not speed: no per-example time limit (a busy CI machine would turn
# Hypothesis's 200 ms default into a timed assertion). Speed lives in benchmarks/.
settings.register_profile("imali", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("imali")

IN_CI = os.environ.get("CI", "").lower() == "true"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, available: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) when an outside service a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{name} is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{name} not available: {reason}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "production_password_hashing: keep the settings' own password hashers (Argon2) for this test")


FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fast_password_hashing(request):
    """Argon2 is deliberately slow and the suite creates and signs in many users, so tests hash
    with MD5. Sign-in still goes through Django's real password check. A test marked
    `production_password_hashing` keeps the configured hashers: that is where Argon2 is proven."""
    if request.node.get_closest_marker("production_password_hashing"):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    yield


@pytest.fixture
def entity(db):
    return factories.make_entity(country="ZA")


@pytest.fixture
def other_entity(db):
    return factories.make_entity(country="NA")


@pytest.fixture
def operator(db):
    return factories.make_operator()


@pytest.fixture
def admin_user(entity):
    return factories.make_admin(entity=entity)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
