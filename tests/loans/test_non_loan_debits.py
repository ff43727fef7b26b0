"""Non-loan debits (other debts) per client: service rules, the screen linked from the client
page, the API, rights and audit entries, and the snapshot's non-loan debt."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditAction, AuditEntry
from imali.loans import selectors, services
from imali.loans.models import NonLoanDebit
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_borrower

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError, field: str) -> list[str]:
    return [e.code for e in exc.error_dict[field]]


def test_add_and_settle_with_their_rules(entity, lender):
    client, _ = make_borrower(entity)
    with pytest.raises(ValidationError) as caught:
        services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="  ", amount="abc", debit_date=None)
    assert set(caught.value.error_dict) == {"description", "amount", "debit_date"}
    debit = services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="  Returned   debit fee ",
                                        amount="85.50", debit_date=dt.date(2026, 3, 2))
    assert debit.description == "Returned debit fee"
    as_of = dt.date(2026, 3, 10)
    assert selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of).non_loan_debt == D("85.50")

    with pytest.raises(ValidationError) as caught:
        services.non_loan_debit_settle(debit=debit, actor=lender, settled_on=dt.date(2026, 3, 1))
    assert codes(caught.value, "settled_on") == ["out_of_range"]
    services.non_loan_debit_settle(debit=debit, actor=lender, settled_on=dt.date(2026, 3, 5))
    debit.refresh_from_db()
    assert (debit.settled_on, debit.settled_by) == (dt.date(2026, 3, 5), lender)
    assert selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of).non_loan_debt == D("0.00")
    with pytest.raises(ValidationError) as caught:
        services.non_loan_debit_settle(debit=debit, actor=lender, settled_on=dt.date(2026, 3, 6))
    assert codes(caught.value, "debit") == ["already_settled"]
    entries = AuditEntry.objects.filter(object_type="loans.NonLoanDebit", object_id=str(debit.pk))
    assert sorted(entries.values_list("action", flat=True)) == sorted([AuditAction.NON_LOAN_DEBIT_ADDED,
                                                                        AuditAction.NON_LOAN_DEBIT_SETTLED])
    assert all(e.subject == str(client.number) for e in entries)


def test_debit_of_another_entitys_client_is_refused(entity, other_entity, lender):
    client, _ = make_borrower(entity)
    with pytest.raises(ValidationError) as caught:
        services.non_loan_debit_add(entity=other_entity, actor=lender, client=client, description="x", amount="1",
                                    debit_date=dt.date(2026, 3, 1))
    assert codes(caught.value, "client") == ["other_entity"]


def test_screen_linked_from_the_client_page_add_and_settle(client, entity, lender):
    borrower, _ = make_borrower(entity)
    debits_url = reverse("web:client_debits", kwargs={"client_id": borrower.pk})
    add_url = reverse("web:non_loan_debit_create", kwargs={"client_id": borrower.pk})
    client.force_login(lender)
    assert debits_url in client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk})).content.decode()
    page = client.get(debits_url).content.decode()
    assert "No non-loan debits" in page and add_url in page

    r = client.post(add_url, {"description": "", "amount": "12", "debit_date": "2026-03-02"})
    assert r.status_code == 400 and "This field is required" in r.content.decode()
    r = client.post(add_url, {"description": "Fee", "amount": "-3", "debit_date": "2026-03-02"})
    assert r.status_code == 400 and "more than zero" in r.content.decode()
    assert not NonLoanDebit.objects.filter(client=borrower).exists()
    r = client.post(add_url, {"description": "Insurance premium", "amount": "120.00", "debit_date": "2026-03-02"})
    assert r.status_code == 302 and r["Location"] == debits_url
    debit = NonLoanDebit.objects.get(client=borrower)
    settle_url = reverse("web:non_loan_debit_settle", kwargs={"nonloandebit_id": debit.pk})
    page = client.get(debits_url).content.decode()
    assert "Insurance premium" in page and "120.00" in page and settle_url in page

    r = client.post(settle_url, {"settled_on": "2026-03-01"})
    assert r.status_code == 400 and "cannot be settled before" in r.content.decode()
    assert client.post(settle_url, {"settled_on": "2026-03-04"}).status_code == 302
    page = client.get(debits_url).content.decode()
    assert "2026-03-04" in page and settle_url not in page
    r = client.post(settle_url, {"settled_on": "2026-03-05"})
    assert r.status_code == 400 and "settled on 2026-03-04 already" in r.content.decode()


def test_screen_rights(client, entity, lender):
    borrower, _ = make_borrower(entity)
    debit = services.non_loan_debit_add(entity=entity, actor=lender, client=borrower, description="Fee", amount="10",
                                        debit_date=dt.date(2026, 3, 2))
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(viewer)
    page = client.get(reverse("web:client_debits", kwargs={"client_id": borrower.pk})).content.decode()
    assert "Fee" in page
    assert reverse("web:non_loan_debit_create", kwargs={"client_id": borrower.pk}) not in page
    assert reverse("web:non_loan_debit_settle", kwargs={"nonloandebit_id": debit.pk}) not in page
    assert client.post(reverse("web:non_loan_debit_create", kwargs={"client_id": borrower.pk}),
                       {"description": "x", "amount": "1", "debit_date": "2026-03-02"}).status_code == 403
    assert client.post(reverse("web:non_loan_debit_settle", kwargs={"nonloandebit_id": debit.pk}),
                       {"settled_on": "2026-03-03"}).status_code == 403
    assert NonLoanDebit.objects.filter(client=borrower).count() == 1 and debit.settled_on is None


def test_non_loan_debit_api(entity, lender):
    borrower, _ = make_borrower(entity)
    other, _ = make_borrower(entity)
    api = APIClient()
    api.force_login(lender)
    r = api.post("/api/non-loan-debits/", {"client": borrower.pk, "description": "", "amount": "0", "debit_date": "2026-03-02"},
                 format="json")
    assert r.status_code == 400 and {"description", "amount"} <= set(r.json())
    r = api.post("/api/non-loan-debits/", {"client": borrower.pk, "description": "Card fee", "amount": "20",
                                           "debit_date": "2026-03-02"}, format="json")
    assert r.status_code == 201, r.json()
    debit_id = r.json()["id"]
    api.post("/api/non-loan-debits/", {"client": other.pk, "description": "Other fee", "amount": "5",
                                       "debit_date": "2026-03-02"}, format="json")
    rows = api.get(f"/api/non-loan-debits/?client={borrower.pk}").json()["results"]
    assert [(row["id"], row["amount"], row["settled_on"]) for row in rows] == [(debit_id, "20.00", None)]
    r = api.post(f"/api/non-loan-debits/{debit_id}/settle/", {"settled_on": "2026-03-01"}, format="json")
    assert r.status_code == 400 and "settled_on" in r.json()
    r = api.post(f"/api/non-loan-debits/{debit_id}/settle/", {"settled_on": "2026-03-03"}, format="json")
    assert r.status_code == 200 and r.json()["settled_on"] == "2026-03-03"
    assert api.get(f"/api/non-loan-debits/?client={borrower.pk}&open=true").json()["results"] == []

    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    api.force_login(viewer)
    assert api.get(f"/api/non-loan-debits/{debit_id}/").status_code == 200
    assert api.post("/api/non-loan-debits/", {"client": borrower.pk, "description": "x", "amount": "1",
                                              "debit_date": "2026-03-02"}, format="json").status_code == 403
