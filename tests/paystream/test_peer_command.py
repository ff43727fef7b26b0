"""The stack's own command line for the payment-stream peer starts it and it answers over HTTP
with the demo's credentials (on an ephemeral port, so a running demo is not disturbed)."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

import pytest

from imali.core.stack import stack_processes
from imali.paystream.demo_data import DEMO_PEER_PASSWORD, DEMO_PEER_USERNAME


@pytest.mark.django_db  # the stack's processes read the gateways and provider setups they stand behind
def test_the_demo_stack_starts_the_payment_stream_peer():
    spec = {p.name: p for p in stack_processes(host="127.0.0.1", port=8000)}["paystream-peer"]
    assert "8041" in spec.argv and DEMO_PEER_PASSWORD not in " ".join(spec.argv)  # the secret rides in the environment
    argv = list(spec.argv)
    argv[argv.index("--port") + 1] = "0"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**spec.env, "PATH": "/usr/bin:/bin"})
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("HTTP_PORT="), line
        port = int(line.split("=", 1)[1])
        auth = base64.b64encode(f"{DEMO_PEER_USERNAME}:{DEMO_PEER_PASSWORD}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/AddEmployer", method="POST",
                                         data=json.dumps({"employerNumber": "1", "name": "Acme"}).encode(),
                                         headers={"Authorization": f"Basic {auth}", "Idempotency-Key": "k-1",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["result"]["employerRef"].startswith("E")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert "Local payment stream" in response.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
