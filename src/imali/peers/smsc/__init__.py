"""A local SMSC speaking SMPP 3.4 over TCP on loopback, with a "phone" web page."""

from .server import SmscConfig, SmscPeer, run_in_thread

__all__ = ["SmscConfig", "SmscPeer", "run_in_thread"]
