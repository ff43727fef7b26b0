"""The generator outside any transaction: one commit per entity, SQLite load settings put back.

Kept apart from test_generator.py, whose module-wide book holds a transaction open."""

from __future__ import annotations

import datetime as dt

import pytest

from imali.clients.models import Client
from imali.demo.generator import generate_book
from tests import factories

NOW = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)



@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_each_entity_commits_and_sqlite_settings_are_restored():
    from django.db import connection

    def pragmas():
        if connection.vendor != "sqlite":
            return None
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            synchronous = cursor.fetchone()[0]
            cursor.execute("PRAGMA cache_size")
            return synchronous, cursor.fetchone()[0]

    before = pragmas()
    summary = generate_book(clients=10, seed=8, actor=factories.make_operator(), countries=("ZA", "NA"), now=NOW)
    assert pragmas() == before
    assert not connection.in_atomic_block
    assert Client.objects.count() == 10 == summary.clients
