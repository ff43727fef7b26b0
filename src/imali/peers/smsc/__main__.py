"""Run the local SMSC: `python -m imali.peers.smsc --port 2775 --http-port 8025`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from . import pdu as P
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
    # Behaving as other SMSCs do (SmscConfig has the details).
    parser.add_argument("--resp-id-format", default="hex", choices=P.ID_FORMATS,
                        help="How submit_sm_resp writes message ids.")
    parser.add_argument("--receipt-id-format", default="hex", choices=P.ID_FORMATS,
                        help="How receipts write them (e.g. hex answered, dec reported).")
    parser.add_argument("--receipt-style", default="both", choices=("both", "text", "tlv"))
    parser.add_argument("--intermediate-receipts", default="", help="States sent before the final one, e.g. ACCEPTD,ENROUTE.")
    parser.add_argument("--final-state", default=None, choices=sorted(P.MESSAGE_STATES))
    parser.add_argument("--first-message-id", type=int, default=1)
    parser.add_argument("--submit-status", type=lambda v: int(v, 0), default=0,
                        help="Answer every submit_sm with this command_status, e.g. 0x65.")
    parser.add_argument("--bind-status", type=lambda v: int(v, 0), default=0,
                        help="Refuse every bind with this command_status, e.g. 0x0D.")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("The local SMSC listens on loopback only.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s smsc %(message)s")
    config = SmscConfig(host=args.host, port=args.port, http_port=args.http_port, system_id=args.system_id,
                        password=args.password, receipt_delay=args.receipt_delay, failure_share=args.failure_share,
                        throttle_per_second=args.throttle_per_second, throttle_tolerance=args.throttle_tolerance,
                        resp_id_format=args.resp_id_format, receipt_id_format=args.receipt_id_format,
                        receipt_style=args.receipt_style,
                        intermediate_receipts=tuple(s for s in args.intermediate_receipts.split(",") if s),
                        final_state=args.final_state, first_message_id=args.first_message_id,
                        submit_status=args.submit_status, bind_status=args.bind_status)

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
