"""Run the local M-PESA peer: `python -m imali.peers.mpesa --port 8051`. Credentials and the
pre-registered callback URLs come from the environment (IMALI_MPESA_*), not the command line."""

from __future__ import annotations

import argparse
import logging
import os

from imali.core.logging import install_redaction

from ..httppeer import serve_forever
from .server import MpesaConfig, MpesaPeer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local M-PESA Daraja peer on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    env = os.environ.get
    defaults = MpesaConfig()
    config = MpesaConfig(
        short_code=env("IMALI_MPESA_SHORT_CODE", defaults.short_code),
        consumer_key=env("IMALI_MPESA_CONSUMER_KEY", defaults.consumer_key),
        consumer_secret=env("IMALI_MPESA_CONSUMER_SECRET", defaults.consumer_secret),
        initiator_name=env("IMALI_MPESA_INITIATOR", defaults.initiator_name),
        security_credential=env("IMALI_MPESA_SECURITY_CREDENTIAL", defaults.security_credential),
        time_zone=env("IMALI_MPESA_TIME_ZONE", defaults.time_zone),
        validation_url=env("IMALI_MPESA_VALIDATION_URL", ""),
        confirmation_url=env("IMALI_MPESA_CONFIRMATION_URL", ""),
        result_delay=float(env("IMALI_MPESA_RESULT_DELAY", "1.0")),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mpesa %(message)s")
    install_redaction()
    serve_forever(MpesaPeer(config, host=args.host, port=args.port).start())


if __name__ == "__main__":
    main()
