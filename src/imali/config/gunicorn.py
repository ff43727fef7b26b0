"""gunicorn settings for serving Imali: `gunicorn -c python:imali.config.gunicorn imali.config.wsgi`.

Every value can be overridden on the command line or by the environment:

    IMALI_WEB_BIND      where to listen (default 127.0.0.1:8000)
    IMALI_WEB_WORKERS   worker processes (default: one per CPU core)
    IMALI_WEB_WORKER_CLASS, IMALI_WEB_THREADS   sync (default) or gthread with this many threads

The application is loaded once in the master before the workers fork (preload), and the URL
configuration with every view module is imported there too: a worker starts ready to answer
instead of importing the whole application on its first request — which, on a busy machine, took
longer than the worker timeout and had the master kill and restart every worker in a loop. No
database connection is opened in the master (each worker opens its own and keeps it for
CONN_MAX_AGE seconds, see settings). The access log redacts callback tokens
(imali.core.logging.GunicornLogger).
"""

from __future__ import annotations

import os

bind = os.environ.get("IMALI_WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("IMALI_WEB_WORKERS", "0") or 0) or (os.cpu_count() or 1)
worker_class = os.environ.get("IMALI_WEB_WORKER_CLASS", "sync")
threads = int(os.environ.get("IMALI_WEB_THREADS", "1"))
preload_app = True
timeout = 60
graceful_timeout = 20
keepalive = 30
logger_class = "imali.core.logging.GunicornLogger"


def on_starting(server) -> None:
    """Import the URL configuration (and with it every view) in the master, then make sure no
    database connection crosses the fork."""
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the import is the point
    connections.close_all()
