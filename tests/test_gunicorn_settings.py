"""The gunicorn settings production and the mobile benchmark serve with (imali.config.gunicorn)."""

from __future__ import annotations

import importlib
import sys

import pytest
from django.db import connection


def load(monkeypatch, **env):
    for name in ("IMALI_WEB_BIND", "IMALI_WEB_WORKERS", "IMALI_WEB_WORKER_CLASS", "IMALI_WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("imali.config.gunicorn", None)
    return importlib.import_module("imali.config.gunicorn")


def test_defaults_preload_the_app_and_redact_the_access_log(monkeypatch):
    conf = load(monkeypatch)
    assert conf.preload_app is True
    assert conf.workers >= 1 and conf.worker_class == "sync" and conf.threads == 1
    assert conf.bind == "127.0.0.1:8000"
    from imali.core.logging import GunicornLogger

    assert conf.logger_class == f"{GunicornLogger.__module__}.{GunicornLogger.__name__}"


def test_the_environment_sets_workers_class_and_threads(monkeypatch):
    conf = load(monkeypatch, IMALI_WEB_BIND="0.0.0.0:9000", IMALI_WEB_WORKERS="5", IMALI_WEB_WORKER_CLASS="gthread",
                IMALI_WEB_THREADS="8")
    assert (conf.bind, conf.workers, conf.worker_class, conf.threads) == ("0.0.0.0:9000", 5, "gthread", 8)


@pytest.mark.django_db(transaction=True)
def test_the_master_imports_every_view_and_keeps_no_database_connection_across_the_fork(monkeypatch):
    conf = load(monkeypatch)
    from django.db import connections
    from django.urls import clear_url_caches

    closed = []
    real_close_all = connections.close_all
    monkeypatch.setattr(connections, "close_all", lambda: (closed.append(True), real_close_all()))
    connection.ensure_connection()
    clear_url_caches()
    conf.on_starting(server=None)
    assert closed  # a forked worker must not share the master's socket
    if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):  # Django keeps in-memory SQLite open
        assert connection.connection is None
    assert "imali.api.endpoints.mobilemoney_callbacks" in sys.modules
