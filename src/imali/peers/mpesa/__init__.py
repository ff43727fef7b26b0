"""Local M-PESA Daraja peer on loopback (see server.py)."""

from .server import MpesaConfig, MpesaPeer

__all__ = ["MpesaConfig", "MpesaPeer"]
