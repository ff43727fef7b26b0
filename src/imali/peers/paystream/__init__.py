from .server import PaystreamPeer, PeerConfig

__all__ = ["PaystreamPeer", "PeerConfig"]
