"""Production mode refuses unsafe settings; the embedded default generates its own secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_settings(tmp_path: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMALI_") and k != "DATABASE_URL"}
    env.update(IMALI_VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT / "src"), **env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import imali.config.settings as s; print(s.DATABASES['default']['ENGINE'], type(s.HUEY).__name__)"],
        env=env, capture_output=True, text=True, timeout=60,
    )


def test_embedded_default_is_sqlite_and_sqlitehuey_with_generated_secret(tmp_path):
    done = _load_settings(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["django.db.backends.sqlite3", "SqliteHuey"]
    secret = (tmp_path / "secret_key").read_text()
    assert len(secret) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    again = _load_settings(tmp_path)
    assert again.returncode == 0 and (tmp_path / "secret_key").read_text() == secret


def test_production_refuses_debug(tmp_path):
    done = _load_settings(tmp_path, IMALI_ENV="production", IMALI_DEBUG="true", IMALI_SECRET_KEY="x" * 64)
    assert done.returncode != 0 and "IMALI_DEBUG is on in production" in done.stderr


def test_production_refuses_missing_or_default_secret(tmp_path):
    missing = _load_settings(tmp_path, IMALI_ENV="production")
    assert missing.returncode != 0 and "IMALI_SECRET_KEY must be set" in missing.stderr
    weak = _load_settings(tmp_path, IMALI_ENV="production", IMALI_SECRET_KEY="changeme")
    assert weak.returncode != 0 and "default or too short" in weak.stderr


def test_production_starts_with_real_secret_and_postgres_url(tmp_path):
    done = _load_settings(
        tmp_path, IMALI_ENV="production", IMALI_SECRET_KEY="k" * 64, IMALI_EMAIL_HOST="smtp.lender.example",
        DATABASE_URL="postgres://u@127.0.0.1:5432/imali", REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["django.db.backends.postgresql", "RedisHuey"]


def _email_settings(tmp_path: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMALI_") and k != "DATABASE_URL"}
    env.update(IMALI_VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT / "src"), **env_overrides)
    code = ("import imali.config.settings as s; print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS, "
            "s.EMAIL_USE_SSL, s.EMAIL_HOST_USER, repr(s.DEFAULT_FROM_EMAIL))")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_email_is_the_console_embedded_and_smtp_when_a_host_is_given(tmp_path):
    embedded = _email_settings(tmp_path)
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.stdout.split()[0] == "django.core.mail.backends.console.EmailBackend"
    smtp = _email_settings(tmp_path, IMALI_EMAIL_HOST="smtp.lender.example", IMALI_EMAIL_PORT="465",
                           IMALI_EMAIL_USER="mailer", IMALI_EMAIL_FROM="Thuso Finance <accounts@thuso.example>")
    assert smtp.returncode == 0, smtp.stderr
    assert smtp.stdout.split()[:6] == ["django.core.mail.backends.smtp.EmailBackend", "smtp.lender.example", "465",
                                       "False", "True", "mailer"]
    assert "'Thuso Finance <accounts@thuso.example>'" in smtp.stdout


def test_production_refuses_to_lose_emails_to_the_console(tmp_path):
    done = _load_settings(tmp_path, IMALI_ENV="production", IMALI_SECRET_KEY="k" * 64)
    assert done.returncode != 0 and "set IMALI_EMAIL_HOST (SMTP) in production" in done.stderr
