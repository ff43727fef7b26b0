"""Hand-built books for the client-marketing tests: the batch tests' book builder (real services)."""

from __future__ import annotations

import pytest

from imali.tenancy.models import Entity
from imali.tenancy.rights import Right
from tests import factories
from tests.batches.conftest import DISBURSED, TODAY, Book, book, cellphone, funded, lender, product  # noqa: F401


@pytest.fixture
def marketer(entity):
    """A user who may run client marketing, view its logs and send (and nothing else)."""
    return factories.make_user(entity=entity, rights=[Right.CLIENT_MARKETING, Right.VIEW_LOGS])


@pytest.fixture
def no_consent_needed(entity):
    Entity.objects.filter(pk=entity.pk).update(marketing_consent_not_required=True)
    entity.refresh_from_db()
    return entity


@pytest.fixture
def immediate_huey(settings):
    """The Huey consumer's work done in the request (Huey's immediate mode)."""
    settings.HUEY.immediate = True
    yield settings.HUEY
    settings.HUEY.immediate = False
