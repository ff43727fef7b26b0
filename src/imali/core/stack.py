"""The processes `make demo` runs together: the web app, one Huey consumer, and the local peers
that stand in for outside systems. Apps add a peer by appending a factory to EXTRA_PROCESSES."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StackProcess:
    name: str
    argv: list[str]
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)


def manage(*args: str) -> list[str]:
    from django.conf import settings

    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


def stack_processes(*, host: str, port: int) -> list[StackProcess]:
    processes = [
        StackProcess("web", manage("runserver", f"{host}:{port}", "--noreload", "--skip-checks"), url=f"http://{host}:{port}/"),
        # One consumer that also runs the periodic scheduler; -k process keeps the web responsive.
        StackProcess("consumer", manage("run_huey", "--workers", "2", "--worker-type", "thread")),
    ]
    for extra in EXTRA_PROCESSES:
        # The web port too: peers that call back into the web app (delivery reports) need it.
        processes.append(extra(host=host, port=port))
    # Nothing of ours is pip-installed: `python -m imali...` children find the code through src/.
    from django.conf import settings

    src = str(settings.BASE_DIR / "src")
    return [StackProcess(p.name, p.argv, p.url, {"PYTHONPATH": src, **p.env}) for p in processes]


# Callables (*, host, port) -> StackProcess, appended by apps that bring a local peer; `host` and
# `port` are the web app's, so a peer can build the URLs it calls back on.
EXTRA_PROCESSES: list = []
