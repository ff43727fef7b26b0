"""Start the web app, the consumer and the local peers together; Ctrl-C stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand

from imali.core.stack import stack_processes


class Command(BaseCommand):
    help = "Run the web app, one Huey consumer and the local peers together until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        children: list[tuple[str, subprocess.Popen]] = []
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            if stopping:
                return
            stopping = True
            self.stdout.write("\nStopping: " + ", ".join(name for name, _ in children))
            for _, proc in children:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for _, proc in children:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for spec in stack_processes(host=host, port=port):
            # Own process group: the terminal's Ctrl-C reaches us, and we stop the children in order.
            proc = subprocess.Popen(spec.argv, env={**env, **spec.env}, start_new_session=True)
            children.append((spec.name, proc))
            self.stdout.write(f"started {spec.name} (pid {proc.pid}) {spec.url}")
        self.stdout.write(self.style.SUCCESS(f"\nImali is running at http://{host}:{port}/  (Ctrl-C stops everything)\n"))
        try:
            while not stopping:
                for name, proc in children:
                    if proc.poll() is not None and not stopping:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping the rest")
                        stop()
                        break
                time.sleep(0.5)
        finally:
            stop()
        sys.exit(0)
