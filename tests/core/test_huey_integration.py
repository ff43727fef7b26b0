"""Huey end to end on Redis: a real consumer process takes a task a producer process enqueued."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import require_service, service_reachable

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("IMALI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

pytestmark = pytest.mark.redis


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env.update(
        REDIS_URL=REDIS_URL,
        IMALI_VAR_DIR=str(tmp_path),
        IMALI_SQLITE_PATH=str(tmp_path / "huey-it.sqlite3"),
        DJANGO_SETTINGS_MODULE="imali.config.settings",
        PYTHONPATH=f"{ROOT / 'src'}:{ROOT}",
    )
    return env


def _run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_consumer_on_redis_runs_an_enqueued_task(tmp_path, migrated_sqlite_file):
    parsed = urlparse(REDIS_URL)
    require_service("Redis", service_reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379), f"nothing answers at {REDIS_URL}")
    env = _env(tmp_path)
    migrated_sqlite_file(tmp_path / "huey-it.sqlite3")
    _run(
        """
        import datetime as dt
        from django.conf import settings
        from django.contrib.sessions.models import Session
        from django.utils import timezone
        settings.HUEY.flush()
        Session.objects.create(session_key="old", session_data="", expire_date=timezone.now() - dt.timedelta(days=1))
        Session.objects.create(session_key="new", session_data="", expire_date=timezone.now() + dt.timedelta(days=1))
        assert type(settings.HUEY).__name__ == "RedisHuey"
        """,
        env,
    )
    consumer = subprocess.Popen(
        [sys.executable, "manage.py", "run_huey", "--workers", "1", "--no-periodic"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out = _run(
            """
            from django.contrib.sessions.models import Session
            from imali.core.tasks import purge_expired_sessions_now
            result = purge_expired_sessions_now()
            print(result.get(blocking=True, timeout=180))  # the consumer's start-up on a loaded machine
            print(sorted(Session.objects.values_list("session_key", flat=True)))
            """,
            env,
        )
    finally:
        consumer.terminate()
        consumer.wait(timeout=15)
    assert out.splitlines() == ["1", "['new']"]
