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
