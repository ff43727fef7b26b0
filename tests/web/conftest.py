import pytest

from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401 - the browser suite's fixtures, for test_browser_screens


@pytest.fixture
def login_as(client):
    """Sign the test client in as a new user of `entity` holding exactly `rights`."""

    def _login(entity, rights=(), **kwargs):
        user = factories.make_user(entity=entity, rights=list(rights) or None, **kwargs)
        client.force_login(user)
        return user

    return _login


@pytest.fixture
def book(entity, admin_user):
    """One object of each kind the web screens address, in `entity`."""
    from imali.clients.services import paypoint_create
    from imali.tenancy.models import Region, Role

    employer = factories.make_employer(entity=entity, actor=admin_user, name="Department of Health")
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="P01", name="Pretoria")
    client = factories.make_client(entity=entity, actor=admin_user, employer=employer, paypoint=paypoint)
    return {
        "client": client, "employer": employer, "paypoint": paypoint,
        "user": admin_user, "role": Role.objects.filter(entity=entity).first(),
        "branch": entity.branches.first(), "region": Region.objects.create(entity=entity, name="Gauteng"),
        "entity": entity,
    }
