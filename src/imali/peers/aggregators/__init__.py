"""Local HTTP stand-ins for the SMS aggregators (Africa's Talking, Clickatell) on loopback."""

from .africastalking import AfricasTalkingPeer
from .base import AggregatorConfig, AggregatorPeer, PeerThread
from .clickatell import ClickatellPeer

PEERS = {"africastalking": AfricasTalkingPeer, "clickatell": ClickatellPeer}

__all__ = ["PEERS", "AfricasTalkingPeer", "AggregatorConfig", "AggregatorPeer", "ClickatellPeer", "PeerThread"]
