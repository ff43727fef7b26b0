"""Fixtures for the API tests: API clients signed in as users holding chosen rights."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from rest_framework.test import APIClient

from imali.tenancy.rights import Right
from tests import factories

# The deep schemathesis run is opt-in (IMALI_SCHEMATHESIS_DEEP=<examples>): without it the module is
# not collected at all, rather than adding some 300 skipped cases to every run.
collect_ignore = [] if os.environ.get("IMALI_SCHEMATHESIS_DEEP") else ["test_schemathesis_deep.py"]

# Valid SA ID numbers with their birth dates and genders. (factories.SA_IDS[2] has a wrong
# check digit, so these tests keep their own list.)
SA_IDS = [
    ("7503305044089", dt.date(1975, 3, 30), "M"),
    ("8001015009087", dt.date(1980, 1, 1), "M"),
    ("9202204720083", dt.date(1992, 2, 20), "F"),
]


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def signed_in(db):
    """signed_in(entity, [rights]) → an APIClient with a session of a new user holding them."""

    def make(entity, rights: list[Right] | None = None, **kwargs) -> APIClient:
        user = factories.make_user(entity=entity, rights=rights, **kwargs)
        api = APIClient()
        api.force_login(user)
        api.user = user
        return api

    return make


@pytest.fixture
def clerk(entity, signed_in):
    """Views and manages clients and employers of `entity`."""
    return signed_in(entity, [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.MANAGE_EMPLOYERS])


def client_payload(entity, /, **overrides) -> dict:
    """A valid client create body for `entity`, with ids instead of objects."""
    data = factories.client_data(entity)
    data["branch"] = data["branch"].pk
    data["date_of_birth"] = data["date_of_birth"].isoformat()
    data.update(overrides)
    return data
