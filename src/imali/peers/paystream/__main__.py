"""Run the local payment stream: `python -m imali.peers.paystream --port 8041 [--wallet-delay 5]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from . import PaystreamPeer, PeerConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local payment-stream peer on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="imali")
    parser.add_argument("--cdv-table", default=os.environ.get("IMALI_PAYSTREAM_CDV_TABLE", ""))
    parser.add_argument("--wallet-delay", type=float, default=5.0, help="seconds until a requested wallet exists")
    parser.add_argument("--activation-delay", type=float, default=5.0, help="seconds a new note stays PENDING")
    parser.add_argument("--mandate-answer", choices=("approve", "reject", "none"), default="approve",
                        help="how the client answers a DebiCheck authentication (none: it times out)")
    parser.add_argument("--mandate-answer-seconds", type=float, default=8.0,
                        help="seconds until the client answers a DebiCheck authentication")
    parser.add_argument("--country", default="ZA", help="whose public holidays are no business days (ISO code)")
    parser.add_argument("--tt1-seconds", type=float, default=120.0, help="TT1 real time: seconds before the bank times out")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("The local payment stream listens on loopback only.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s paystream %(message)s")
    config = PeerConfig(host=args.host, port=args.port, username=args.username,
                        password=os.environ.get("IMALI_PAYSTREAM_PEER_PASSWORD", "local-password"),
                        cdv_table=args.cdv_table, wallet_delay=args.wallet_delay, activation_delay=args.activation_delay,
                        mandate_answer=args.mandate_answer, mandate_answer_seconds=args.mandate_answer_seconds,
                        tt1_seconds=args.tt1_seconds, country=args.country.upper())
    peer = PaystreamPeer(config).start()
    print(f"HTTP_PORT={peer.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    peer.stop()


if __name__ == "__main__":
    main()
