"""A lender outside South Africa records only the payback types it has: DebiCheck, NAEDO and
Social-grant EFT are South Africa's debit streams, refused elsewhere with a reason (on receipts
and on clients), and not offered on its forms."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.clients.services import client_update
from imali.loans import services
from imali.loans.models import Receipt
from imali.web.forms import ClientForm
from imali.web.views.loans import ReceiptForm
from tests import factories

from .conftest import make_loan

pytestmark = pytest.mark.django_db

SA_ONLY = {"debicheck", "naedo", "social_grant_eft"}


@pytest.fixture
def na_lender():
    entity = factories.make_entity(country="NA")
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    return entity, user


@pytest.mark.parametrize("payback_type", sorted(SA_ONLY))
def test_a_namibian_receipt_by_a_south_african_stream_is_refused_and_writes_nothing(na_lender, payback_type):
    entity, user = na_lender
    loan = make_loan(entity, user=user)
    with pytest.raises(ValidationError) as exc:
        services.receipt_post(entity=entity, actor=user, loan=loan, amount="100", value_date=dt.date(2026, 1, 20),
                              payback_type=payback_type)
    message = exc.value.error_dict["payback_type"][0].message
    assert "is South Africa's; a lender in Namibia records Cash, EFT, Debit order, Mobile money." in message
    assert not Receipt.objects.filter(loan=loan).exists()
    services.receipt_post(entity=entity, actor=user, loan=loan, amount="100", value_date=dt.date(2026, 1, 20),
                          payback_type="debit_order")
    assert Receipt.objects.filter(loan=loan, payback_type="debit_order").count() == 1


def test_a_south_african_receipt_may_still_come_by_naedo(entity):
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = Decimal("100000")
    user.save()
    loan = make_loan(entity, user=user)
    receipt = services.receipt_post(entity=entity, actor=user, loan=loan, amount="100", value_date=dt.date(2026, 1, 20),
                                    payback_type="naedo")
    assert receipt.payback_type == "naedo"


def test_a_namibian_client_is_refused_a_south_african_payback_type(na_lender):
    entity, user = na_lender
    client = factories.make_client(entity=entity)
    with pytest.raises(ValidationError) as exc:
        client_update(client=client, actor=user, data={"payback_type": "debicheck"})
    assert "DebiCheck is South Africa's" in exc.value.error_dict["payback_type"][0].message
    client.refresh_from_db()
    assert client.payback_type == ""


@pytest.mark.parametrize("country", ["NA", "BW", "SZ", "ZM"])
def test_forms_outside_south_africa_offer_neither_its_id_nor_its_debit_streams(country):
    entity = factories.make_entity(country=country)
    form = ClientForm(entity=entity)
    assert "sa_id" not in {v for v, _ in form.fields["id_type"].choices}
    assert not SA_ONLY & {v for v, _ in form.fields["payback_type"].choices}
    assert not SA_ONLY & {v for v, _ in ReceiptForm(country=country).fields["payback_type"].choices}


def test_south_african_forms_offer_them(entity):
    form = ClientForm(entity=entity)
    assert "sa_id" in {v for v, _ in form.fields["id_type"].choices}
    assert SA_ONLY <= {v for v, _ in form.fields["payback_type"].choices}
    assert SA_ONLY <= {v for v, _ in ReceiptForm(country="ZA").fields["payback_type"].choices}


def test_the_receipt_screen_of_a_namibian_loan_offers_no_naedo(client, na_lender):
    entity, user = na_lender
    loan = make_loan(entity, user=user)
    client.force_login(user)
    page = client.get(reverse("web:receipt_create", kwargs={"loan_id": loan.pk})).content.decode()
    assert 'value="debit_order"' in page and 'value="naedo"' not in page and 'value="debicheck"' not in page
