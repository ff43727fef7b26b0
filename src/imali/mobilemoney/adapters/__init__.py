"""The mobile-money providers behind one protocol (base.MobileMoneyAdapter); `adapter_for`
builds the real HTTP implementation for a stored setup."""

from __future__ import annotations

from .base import (
    DestinationRefused,
    MobileMoneyAdapter,
    PaymentResult,
    ProviderError,
    ProviderUnavailable,
)


def adapter_for(setup, *, timeout: float = 10.0) -> MobileMoneyAdapter:
    from ..models import Provider

    if setup.provider == Provider.MPESA:
        from .mpesa import MpesaAdapter

        return MpesaAdapter.from_setup(setup, timeout=timeout)
    from .momo import MomoAdapter

    return MomoAdapter.from_setup(setup, timeout=timeout)


__all__ = ["DestinationRefused", "MobileMoneyAdapter", "PaymentResult", "ProviderError", "ProviderUnavailable", "adapter_for"]
