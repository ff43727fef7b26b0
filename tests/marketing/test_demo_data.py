"""Generated books fill the client fields client marketing added, and a data set of one reads them."""

from __future__ import annotations

import pytest

from imali.clients.models import Client
from imali.demo.generator import generate_book
from imali.loans.demo_data import add_loans
from imali.marketing.demo_data import add_marketing_fields
from imali.marketing.selectors import dataset_rows
from imali.tenancy.models import Entity
from tests import factories

pytestmark = pytest.mark.django_db


def test_generated_clients_get_payback_type_marketing_info_and_affordability():
    summary = generate_book(clients=60, seed=3, actor=factories.make_operator(), countries=("ZA",),
                            extensions=[add_loans, add_marketing_fields])
    entity = Entity.objects.get(pk=summary.entities[0].entity_id)
    clients = Client.objects.filter(entity=entity)
    assert clients.exclude(payback_type="").count() == clients.count() == 60
    assert clients.exclude(marketing_info="").exists() and clients.filter(marketing_info="").exists()
    with_salary = clients.exclude(salary=None)
    assert with_salary.exists()
    for c in with_salary:
        assert c.available_for_instalment is not None and 0 < c.available_for_instalment <= c.salary
    assert clients.exclude(budget_available_for_instalment=None).exists()
    Entity.objects.filter(pk=entity.pk).update(marketing_consent_not_required=True)
    entity.refresh_from_db()
    rows = list(dataset_rows(entity=entity, filters={}, as_of=summary.now.date()))
    assert len(rows) == clients.exclude(status="deceased").count()
    assert all(r[1 + 29] for r in rows)  # payback type, in words, on every row
