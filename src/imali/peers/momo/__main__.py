"""Run the local MTN MoMo peer: `python -m imali.peers.momo --port 8052`. Credentials come from the
environment (IMALI_MOMO_*), not the command line."""

from __future__ import annotations

import argparse
import logging
import os

from imali.core.logging import install_redaction

from ..httppeer import serve_forever
from .server import MomoConfig, MomoPeer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local MTN MoMo Open API peer on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    env = os.environ.get
    defaults = MomoConfig()
    config = MomoConfig(
        api_user=env("IMALI_MOMO_API_USER", defaults.api_user), api_key=env("IMALI_MOMO_API_KEY", defaults.api_key),
        subscription_key=env("IMALI_MOMO_SUBSCRIPTION_KEY", defaults.subscription_key),
        target_environment=env("IMALI_MOMO_TARGET_ENVIRONMENT", defaults.target_environment),
        currency=env("IMALI_MOMO_CURRENCY", defaults.currency), transfer_delay=float(env("IMALI_MOMO_DELAY", "1.0")),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s momo %(message)s")
    install_redaction()
    serve_forever(MomoPeer(config, host=args.host, port=args.port).start())


if __name__ == "__main__":
    main()
