"""The local SMSC in a process of its own, for tests and benchmarks where it must not share the
interpreter lock with the consumer: a thread in the same process would see submits delayed by
the consumer's work and police a pace the client never sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SRC = Path(__file__).resolve().parents[3]


class PeerProcess:
    def __init__(self, *options: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imali.peers.smsc", "--port", "0", "--http-port", "0", *options],
            cwd=SRC.parent, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("SMPP_PORT="):
                fields = dict(part.split("=") for part in line.split())
                self.port, self.http_port = int(fields["SMPP_PORT"]), int(fields["HTTP_PORT"])
                return
        self.proc.kill()
        raise RuntimeError("the SMSC did not start")

    def stats(self) -> dict:
        """The SMSC's counters (`stats`), submit_sm accepted and distinct destinations accepted."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/stats.json", timeout=10) as answer:
            return json.loads(answer.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def run_in_process(*options: str) -> PeerProcess:
    """Start `python -m imali.peers.smsc` on ephemeral loopback ports with these command-line options."""
    return PeerProcess(*options)
