"""The demo's payment stream: the local peer on 127.0.0.1:8041 (started by `make demo`, see
apps.py) and the demo entity's settings pointing at it."""

from __future__ import annotations

DEMO_PEER_PORT = 8041
DEMO_PEER_USERNAME = "imali-demo"
# A demo-only credential for a loopback peer that holds made-up data; real credentials are entered
# on the stream settings screen and never kept in the repository.
DEMO_PEER_PASSWORD = "demo-stream-password"
DEMO_WALLET_DELAY = 5
