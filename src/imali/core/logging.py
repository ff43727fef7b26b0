"""Keeps credentials that travel in URLs out of the logs.

The aggregators' delivery and inbound callbacks can only be given a URL, so their credential is a
query parameter (`?gateway=...&token=...`, see imali.api.endpoints.callbacks). Every line that
prints such a URL — the development server's access log (`django.server`), Django's 4xx/5xx
warnings (`django.request`), a peer's "callback failed" line — would write the token to disk.
`RedactSecretsFilter` rewrites the value of any secret-looking query parameter to `[redacted]`
in a record's message and arguments, leaving the path and the other parameters readable.

Pure Python on purpose: the local peers (`python -m imali.peers...`) use it without Django.
"""

from __future__ import annotations

import copy
import logging
import re

REDACTED = "[redacted]"

# Query-parameter names whose value is a credential. Matched case-insensitively and as whole
# names, so `?gateway=x` or `?keyword=y` stay readable while `?token=`, `?apiKey=`, `?otp=` do not.
SECRET_PARAMETERS = (
    "token", "access_token", "refresh_token", "auth_token", "callback_token",
    "key", "api_key", "apikey", "api-key", "secret", "client_secret",
    "password", "passwd", "pwd", "pin", "otp", "code", "signature", "sig",
)

_SECRET_QUERY = re.compile(
    r"(?P<name>(?:^|(?<=[?&;]))(?:" + "|".join(re.escape(n) for n in SECRET_PARAMETERS) + r"))=(?P<value>[^&;#\s\"']*)",
    re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    """`text` with the value of every secret query parameter replaced by [redacted]."""
    if "=" not in text:
        return text
    return _SECRET_QUERY.sub(lambda m: f"{m.group('name')}={REDACTED}" if m.group("value") else m.group(0), text)


def _redacted_argument(value):
    # Strings are rewritten; anything else (an exception, a Request object) only when its text
    # carries a secret, so numbers keep their type for %d and the server formatter's status checks.
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    redacted = redact_secrets(text)
    return value if redacted == text else redacted


class RedactSecretsFilter(logging.Filter):
    """Attach to a logger (it then applies before every handler, propagated ones included) or to a
    handler (it then applies to whatever reaches that handler from any logger). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_secrets(record.msg)
        elif record.msg is not None and not isinstance(record.msg, (int, float)):
            text = str(record.msg)
            redacted = redact_secrets(text)
            if redacted != text:
                record.msg = redacted
        if isinstance(record.args, dict):
            changed = {k: r for k, v in record.args.items() if (r := _redacted_argument(v)) is not v}
            if changed:
                # A copy of the same class: gunicorn's access atoms are a dict subclass whose
                # lookups supply "-" for missing keys, which the format relies on.
                args = copy.copy(record.args)
                for k, v in changed.items():
                    args[k] = v
                record.args = args
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted_argument(a) for a in record.args)
        return True


def install_redaction(*loggers: str) -> RedactSecretsFilter:
    """Add the filter to the named loggers and to their handlers (the root logger when none is named),
    for processes that configure logging with basicConfig instead of Django's LOGGING."""
    redact = RedactSecretsFilter()
    for name in loggers or ("",):
        logger = logging.getLogger(name or None)
        logger.addFilter(redact)
        for handler in logger.handlers:
            handler.addFilter(redact)
    return redact


try:  # gunicorn serves production; its access log is its own, outside Django's LOGGING.
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover - gunicorn is a dependency; the peers may run without it
    _GunicornLogger = None

if _GunicornLogger is not None:

    class GunicornLogger(_GunicornLogger):
        """gunicorn's logger with the access line's request line, query string, raw URI and
        referer redacted: `gunicorn --logger-class imali.core.logging.GunicornLogger ...`."""

        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            return {k: redact_secrets(v) if isinstance(v, str) else v for k, v in atoms.items()}
