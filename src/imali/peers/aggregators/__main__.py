"""Run a local aggregator:
`python -m imali.peers.aggregators --kind africastalking --port 8031 --callback URL [--inbound-callback URL]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from imali.core.logging import install_redaction

from . import PEERS, AggregatorConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local SMS aggregator peer on loopback.")
    parser.add_argument("--kind", choices=sorted(PEERS), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="imali")
    # Secrets default from the environment so they need not sit on the command line (`ps` shows it).
    parser.add_argument("--api-key", default=os.environ.get("IMALI_PEER_API_KEY", "local-api-key"))
    parser.add_argument("--callback", default=os.environ.get("IMALI_PEER_CALLBACK", ""),
                        help="URL delivery reports are POSTed to (default $IMALI_PEER_CALLBACK)")
    parser.add_argument("--inbound-callback", default=os.environ.get("IMALI_PEER_INBOUND_CALLBACK", ""),
                        help="URL incoming messages are POSTed to (default $IMALI_PEER_INBOUND_CALLBACK)")
    parser.add_argument("--callback-delay", type=float, default=1.0)
    parser.add_argument("--failure-share", type=float, default=0.0)
    parser.add_argument("--rate-per-second", type=float, default=None)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("The local aggregator listens on loopback only.")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.kind} %(message)s")
    # Our callback URLs carry the receiver's token (imali.core.logging).
    install_redaction()
    config = AggregatorConfig(host=args.host, port=args.port, username=args.username, api_key=args.api_key,
                              delivery_callback=args.callback, inbound_callback=args.inbound_callback,
                              callback_delay=args.callback_delay, failure_share=args.failure_share,
                              rate_per_second=args.rate_per_second)
    peer = PEERS[args.kind](config).start()
    # Read by whoever started us with --port 0 to learn the port.
    print(f"HTTP_PORT={peer.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    peer.stop()


if __name__ == "__main__":
    main()
