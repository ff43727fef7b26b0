import pytest

from imali.messaging.credits import credits_assign
from tests import factories


@pytest.fixture
def funded(entity, operator):
    """The entity with 1,000 SMS credits."""
    credits_assign(actor=operator, entity=entity, channel="sms", amount=1000)
    return entity


@pytest.fixture
def sms_client(entity):
    return factories.make_client(entity=entity, name="Thabo")


@pytest.fixture
def gateway_transports():
    """Transports built from Gateway rows as the dispatcher builds them, closed after the test;
    `bound`: first wait (up to 5 s) for the SMSC to accept the bind."""
    from imali.messaging.dispatch import transports_from_gateways

    opened = []

    def open_(gateway, *, bound=True):
        transports = transports_from_gateways([gateway])
        opened.extend(transports.values())
        if bound:
            assert transports[gateway.name].wait_bound(5)
        return transports

    yield open_
    for transport in opened:
        transport.close()
