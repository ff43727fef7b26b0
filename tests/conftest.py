"""Shared fixtures, and the rule for outside services: under CI=true a missing one fails the run;
on a developer's machine the tests that need it skip with a one-line reason."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_FIXTURE = "migrated_sqlite_file"


class _Template:
    """One SQLite file migrated by `manage.py migrate` in a process of its own, started as soon as
    the run is known to need it, so the migration overlaps the first tests instead of holding one up."""

    folder: Path | None = None
    process: subprocess.Popen | None = None

    @classmethod
    def start(cls):
        if cls.process is not None:
            return
        cls.folder = Path(tempfile.mkdtemp(prefix="imali-migrated-sqlite-"))
        atexit.register(shutil.rmtree, cls.folder, True)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(IMALI_VAR_DIR=str(cls.folder), IMALI_SQLITE_PATH=str(cls.folder / "template.sqlite3"),
                   PYTHONPATH=str(ROOT / "src"))
        with open(cls.folder / "migrate.log", "w") as log:
            cls.process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env,
                                           cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        atexit.register(cls.stop)

    @classmethod
    def stop(cls):
        if cls.process is not None and cls.process.poll() is None:
            cls.process.kill()
            cls.process.wait(10)

    @classmethod
    def ready(cls) -> Path:
        cls.start()
        # A fresh SQLite file: over 300 s was seen at a load average of 12.
        returncode = cls.process.wait(timeout=900)
        assert returncode == 0, (cls.folder / "migrate.log").read_text()
        return cls.folder / "template.sqlite3"


def pytest_collection_modifyitems(items):
    if any(TEMPLATE_FIXTURE in getattr(item, "fixturenames", ()) for item in items):
        _Template.start()


@pytest.fixture(scope="session")
def migrated_sqlite_file():
    """copy_to(path): a fresh copy of one SQLite file migrated by `manage.py migrate`, once per run.
    The tests of real processes on a throw-away SQLite file (the consumer and bulk-run kills, Huey
    on Redis) each migrated their own file: ~15 s of CPU apiece, 40 s and more of wall time on a
    loaded machine. Each test still gets its own file, as before."""
    template = _Template.ready()

    def copy_to(path: Path) -> Path:
        # SQLite's own backup: whole even if rows were still in the template's write-ahead log.
        source, target = sqlite3.connect(template), sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return path

    return copy_to


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings):
    """PostgreSQL test connections commit without waiting for the WAL to reach the disk
    (synchronous_commit=off, for these connections only). What a commit makes visible, the locks,
    isolation and constraints are unchanged; only a crash of the server itself could lose the last
    commits, which no test makes. The transactional tests commit thousands of times and flush the
    database after each test; on a machine whose disk is busy each of those waited on an fsync."""
    from django.db import connections

    for alias in connections:
        settings_dict = connections[alias].settings_dict
        if settings_dict["ENGINE"].endswith("postgresql"):
            options = settings_dict.setdefault("OPTIONS", {})
            options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
    return django_db_modify_db_settings
