"""Imali settings: one module, every value from the environment with an embedded default.

Embedded default (no environment at all): SQLite under var/, SqliteHuey under var/, DEBUG on,
a secret key generated into var/ on first run. Production (IMALI_ENV=production) refuses to
start with DEBUG on or without a real secret key from the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = Path(os.environ.get("IMALI_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

IMALI_ENV = os.environ.get("IMALI_ENV", "development")
PRODUCTION = IMALI_ENV == "production"
DEBUG = _env_bool("IMALI_DEBUG", not PRODUCTION)

_SECRET_FILE = VAR_DIR / "secret_key"


def _load_or_create_secret_key() -> str:
    from_env = os.environ.get("IMALI_SECRET_KEY", "")
    if from_env:
        return from_env
    if PRODUCTION:
        # A key generated onto one machine's disk is a default, not a secret shared by a fleet.
        raise ImproperlyConfigured("IMALI_SECRET_KEY must be set in production.")
    if not _SECRET_FILE.exists():
        _SECRET_FILE.write_text(secrets.token_urlsafe(64))
        _SECRET_FILE.chmod(0o600)
    return _SECRET_FILE.read_text().strip()


SECRET_KEY = _load_or_create_secret_key()

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("Refusing to start: IMALI_DEBUG is on in production.")
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure") or SECRET_KEY in {
        "changeme",
        "secret",
    }:
        raise ImproperlyConfigured("Refusing to start: IMALI_SECRET_KEY is a default or too short.")

ALLOWED_HOSTS = [h for h in os.environ.get("IMALI_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("IMALI_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "huey.contrib.djhuey",
    "django_htmx",
    "imali.core",
    "imali.tenancy",
    "imali.clients",
    "imali.loans",
    "imali.messaging",
    "imali.signing",
    "imali.smsbanking",
    "imali.reminders",
    "imali.mobilemoney",
    "imali.batches",
    "imali.paystream",
    "imali.marketing",
    "imali.demo",
    "imali.web",
    "imali.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "imali.tenancy.middleware.CurrentEntityMiddleware",
]

ROOT_URLCONF = "imali.config.urls"
WSGI_APPLICATION = "imali.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "imali.web.context_processors.navigation",
            ],
            # The money, date and time filters are on every page without a {% load %}.
            "builtins": ["imali.web.templatetags.imali_web"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("IMALI_SQLITE_PATH", str(VAR_DIR / "imali.sqlite3")),
            "OPTIONS": {
                # WAL lets the web process read while the consumer writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
                "transaction_mode": "IMMEDIATE",
            },
        }
    }
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("IMALI_PG_TEST_DB", "test_imali")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background work (Huey) -----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
HUEY_IMMEDIATE = _env_bool("IMALI_HUEY_IMMEDIATE", False)
if REDIS_URL:
    from huey import RedisHuey

    HUEY = RedisHuey("imali", url=REDIS_URL, immediate=HUEY_IMMEDIATE, utc=True)
else:
    from huey import SqliteHuey

    HUEY = SqliteHuey(
        "imali",
        filename=str(VAR_DIR / "huey.sqlite3"),
        immediate=HUEY_IMMEDIATE,
        utc=True,
    )

# --- Auth and sessions ----------------------------------------------------------------------
AUTH_USER_MODEL = "tenancy.User"
AUTHENTICATION_BACKENDS = ["imali.tenancy.backends.RoleBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "web:login"

# Lock-out: this many failed logins for one username inside the window lock it for the window.
IMALI_LOGIN_MAX_FAILURES = int(os.environ.get("IMALI_LOGIN_MAX_FAILURES", "5"))
IMALI_LOGIN_LOCKOUT_MINUTES = int(os.environ.get("IMALI_LOGIN_LOCKOUT_MINUTES", "15"))

# A receipt may exceed the loan's balance by at most the larger of this amount and this percent of
# the balance (the excess is change available); a larger one is refused (docs/loans.md).
IMALI_RECEIPT_TOLERANCE_AMOUNT = os.environ.get("IMALI_RECEIPT_TOLERANCE_AMOUNT", "1000.00")
IMALI_RECEIPT_TOLERANCE_PERCENT = os.environ.get("IMALI_RECEIPT_TOLERANCE_PERCENT", "10")

# A multipart body (a file upload) over this is refused before it is read (core/uploads.py): the
# largest file the app takes is a 40 MB mobile-money statement. Form fields, files aside, stay
# within Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) and DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000).
UPLOAD_MAX_BYTES = int(os.environ.get("IMALI_UPLOAD_MAX_MB", "41")) * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "imali.core.uploads.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("IMALI_SESSION_SECONDS", str(8 * 3600)))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Secure-only cookies and HSTS need TLS, which the embedded demo on loopback does not have.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
if PRODUCTION:
    SECURE_SSL_REDIRECT = _env_bool("IMALI_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("IMALI_HSTS_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("IMALI_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- I18N -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-za"
TIME_ZONE = "Africa/Johannesburg"
USE_I18N = True
USE_TZ = True
# Dates ISO (YYYY-MM-DD), times 24-hour with the zone; the language's own formats come second.
FORMAT_MODULE_PATH = ["imali.config.formats"]

# --- Static files (installed by the build, served locally; no CDN) --------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("IMALI_STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "imali.api.authentication.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "imali.api.parsers.JSONParser",  # DRF's, refusing bodies nested too deeply with a 400
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "imali.api.openapi.ImaliAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "imali.api.base.EntityPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "imali.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Imali API",
    "DESCRIPTION": "Back office for micro-lenders: clients, employers and more. Every call is scoped to the caller's entity.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several apps have a `status` or `kind`; name each enum after its own choices class.
    "ENUM_NAME_OVERRIDES": {
        "DataSetStateEnum": "imali.marketing.models.DataSetState",
        "MarketingSendStateEnum": "imali.marketing.models.SendState",
        "ClientStatusEnum": "imali.clients.models.ClientStatus",
        "ClientTitleEnum": "imali.clients.models.Title",
        "EmployerClassificationEnum": "imali.clients.models.EmployerClassification",
        "EconomicSectorEnum": "imali.clients.models.EconomicSector",
        "PaymentFrequencyEnum": "imali.clients.models.PaymentFrequency",
        "PaymentMoveDirectionEnum": "imali.clients.models.PaymentMoveDirection",
        "AppointmentTypeEnum": "imali.clients.models.AppointmentType",
        "IdTypeEnum": "imali.core.idnumbers.IdType",
        "GenderEnum": "imali.core.idnumbers.Gender",
        "DebiCheckMandateStatusEnum": "imali.paystream.models.MandateState",
        "CollectionStatusEnum": "imali.smsbanking.models.CollectionStatus",
    },
}
IMALI_API_TOKEN_HOURS = int(os.environ.get("IMALI_API_TOKEN_HOURS", "24"))

# --- Outbound destinations: where the adapters may connect (core/destination.py) -----------------
# Plain http to a loopback peer (the local peers of `make demo` and the tests): development only,
# unless the operator turns it on. IMALI_PAYSTREAM_* are the earlier names, read when the
# IMALI_OUTBOUND_* ones are not set.
def _env_hosts(*names: str) -> list[str]:
    for name in names:
        if name in os.environ:
            return [h.strip() for h in os.environ[name].split(",") if h.strip()]
    return []


OUTBOUND_ALLOW_LOOPBACK = _env_bool("IMALI_OUTBOUND_ALLOW_LOOPBACK",
                                    _env_bool("IMALI_PAYSTREAM_ALLOW_LOOPBACK", not PRODUCTION))
# Hosts (names, addresses or networks) a destination may be at although internal, e.g. a bank over a VPN.
OUTBOUND_ALLOWED_HOSTS = _env_hosts("IMALI_OUTBOUND_ALLOWED_HOSTS", "IMALI_PAYSTREAM_ALLOWED_HOSTS")

# --- Logging: never log secrets or codes; audit goes to the database, not the log. -----------
# Credentials that travel in URLs (the aggregators' callback token, see imali.core.logging) are
# redacted on the loggers that print request lines — the development server's access log and
# Django's 4xx/5xx warnings — and on our handler, which everything else propagates to.
# django.server is redefined whole (handler and formatter as Django's defaults) because naming a
# logger here replaces its handlers.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "imali.core.logging.RedactSecretsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {"()": "django.utils.log.ServerFormatter", "format": "[{server_time}] {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
        "django.server": {"level": "INFO", "class": "logging.StreamHandler", "formatter": "django.server",
                          "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("IMALI_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False, "filters": ["redact_secrets"]},
        "django.request": {"filters": ["redact_secrets"]},
        # Configured here, the Huey consumer does not add a handler of its own (each line twice).
        "huey": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Email: SMTP in production, the console when embedded ------------------------------------
# Production sends through the SMTP server of IMALI_EMAIL_HOST; without it production refuses to
# start rather than print clients' emails to a console nobody reads.
EMAIL_HOST = os.environ.get("IMALI_EMAIL_HOST", "")
EMAIL_BACKEND = os.environ.get(
    "IMALI_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = int(os.environ.get("IMALI_EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("IMALI_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("IMALI_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("IMALI_EMAIL_STARTTLS", EMAIL_PORT == 587)
EMAIL_USE_SSL = _env_bool("IMALI_EMAIL_SSL", EMAIL_PORT == 465)
EMAIL_TIMEOUT = int(os.environ.get("IMALI_EMAIL_TIMEOUT", "30"))
DEFAULT_FROM_EMAIL = os.environ.get("IMALI_EMAIL_FROM", "Imali <no-reply@imali.invalid>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if PRODUCTION and EMAIL_BACKEND.endswith((".console.EmailBackend", ".locmem.EmailBackend", ".dummy.EmailBackend")):
    raise ImproperlyConfigured("Refusing to start: set IMALI_EMAIL_HOST (SMTP) in production; emails would be lost.")
