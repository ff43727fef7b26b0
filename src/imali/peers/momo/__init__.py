"""Local MTN MoMo Open API peer on loopback (see server.py)."""

from .server import MomoConfig, MomoPeer

__all__ = ["MomoConfig", "MomoPeer"]
