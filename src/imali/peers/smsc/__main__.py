"""Run the local SMSC: `python -m imali.peers.smsc --port 2775 --http-port 8025`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .server import SmscConfig, SmscPeer


def main() -> None:
    parser = argparse.ArgumentParser(description="Local SMPP 3.4 SMSC on loopback with a 'phone' page.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument("--http-port", type=int, default=8025)
    parser.add_argument("--system-id", default="imali")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--receipt-delay", type=float, default=1.0)
    parser.add_argument("--failure-share", type=float, default=0.0)
    parser.add_argument("--throttle-per-second", type=float, default=None,
                        help="Refuse submit_sm (ESME_RTHROTTLED) spaced closer than 1/N s.")
    parser.add_argument("--throttle-tolerance", type=float, default=0.1,
                        help="How early a submit_sm may come, in seconds (the policer's jitter tolerance).")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("The local SMSC listens on loopback only.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s smsc %(message)s")
    config = SmscConfig(host=args.host, port=args.port, http_port=args.http_port, system_id=args.system_id,
                        password=args.password, receipt_delay=args.receipt_delay, failure_share=args.failure_share,
                        throttle_per_second=args.throttle_per_second, throttle_tolerance=args.throttle_tolerance)

    async def run() -> None:
        peer = SmscPeer(config)
        await peer.start()
        logging.info("SMPP on %s:%s, phone page on http://%s:%s/", args.host, peer.port, args.host, peer.http_port)
        # Read by whoever started us with --port 0 to learn the port.
        print(f"SMPP_PORT={peer.port} HTTP_PORT={peer.http_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await peer.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
