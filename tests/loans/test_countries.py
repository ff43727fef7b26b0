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
from imali.loans.models import Product, Receipt
from imali.web.forms import ClientForm
from imali.web.views.loans import ReceiptForm
from tests import factories

from .conftest import make_borrower, make_loan

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


# --- initiation fee where no cap is recorded --------------------------------------------------------
PRODUCT = {"name": "Monthly", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "500",
           "max_principal": "20000", "min_instalments": 1, "max_instalments": 12, "interest_rate_pm": "4",
           "service_fee_pm": "50", "vat_rate": "14"}


def test_a_botswana_product_that_charges_an_initiation_fee_must_say_which():
    # No cap is recorded for Botswana: "charge the highest fee the caps allow" charged nothing and
    # said nothing. Now the lender states the fee (DOMAIN §10 gives no Botswana rule to apply).
    entity = factories.make_entity(country="BW")
    with pytest.raises(ValidationError) as exc:
        services.product_create(entity=entity, actor=None, data={**PRODUCT, "charge_initiation_fee": True})
    assert "No initiation-fee cap is recorded for Botswana" in exc.value.error_dict["initiation_fee"][0].message
    assert not entity.loan_products.exists()
    product = services.product_create(entity=entity, actor=None, data={**PRODUCT, "charge_initiation_fee": True,
                                                                        "initiation_fee": "150"})
    client, _ = make_borrower(entity)
    loan = services.loan_apply(entity=entity, actor=None, client=client, product=product, principal="2000",
                               instalments=3, applied_on=dt.date(2026, 11, 2))
    assert loan.initiation_fee == Decimal("150.00") and loan.vat_rate == Decimal("14.00")


def test_a_product_without_a_fee_charges_none_outside_south_africa():
    entity = factories.make_entity(country="ZM")
    product = services.product_create(entity=entity, actor=None, data=PRODUCT)
    assert product.charge_initiation_fee is False and product.initiation_fee is None


def test_a_south_african_product_takes_its_fee_from_the_cap_not_the_lender(entity):
    with pytest.raises(ValidationError) as exc:
        services.product_create(entity=entity, actor=None, data={**PRODUCT, "vat_rate": "15", "interest_rate_pm": "2", "initiation_fee": "150"})
    assert "leave this blank" in exc.value.error_dict["initiation_fee"][0].message
    product = services.product_create(entity=entity, actor=None, data={**PRODUCT, "vat_rate": "15", "interest_rate_pm": "2"})
    assert product.charge_initiation_fee is True


@pytest.mark.parametrize(("country", "vat"), [("BW", "14"), ("ZM", "16"), ("NA", "15")])
def test_the_new_product_form_shows_the_countrys_vat_rate(client, country, vat):
    entity = factories.make_entity(country=country)
    client.force_login(factories.make_admin(entity=entity))
    page = client.get(reverse("web:product_create")).content.decode()
    assert f'name="vat_rate" value="{vat}"' in page and 'name="initiation_fee"' in page


def test_a_namibian_product_made_before_the_initiation_fee_can_still_be_changed():
    # Made before loans/0011: "charges an initiation fee", no fee of its own, and charged nothing
    # (no cap is recorded for Namibia). Switching it off or renaming it must not demand a fee.
    import importlib

    from django.apps import apps

    entity = factories.make_entity(country="NA")
    product = services.product_create(entity=entity, actor=None, data={**PRODUCT, "vat_rate": "15"})
    Product.objects.filter(pk=product.pk).update(charge_initiation_fee=True, initiation_fee=None)
    za = services.product_create(entity=factories.make_entity(country="ZA"), actor=None,
                                 data={**PRODUCT, "vat_rate": "15", "interest_rate_pm": "2"})
    importlib.import_module("imali.loans.migrations.0012_product_fee_flag_where_no_cap").say_what_was_charged(apps, None)
    product.refresh_from_db()
    product = services.product_update(product=product, actor=None, data={"name": "Monthly (old)"})
    client, _ = make_borrower(entity)
    loan = services.loan_apply(entity=entity, actor=None, client=client, product=product, principal="2000",
                               instalments=3, applied_on=dt.date(2026, 11, 2))
    assert loan.initiation_fee == Decimal("0.00")  # what it charged before
    services.product_update(product=product, actor=None, data={"is_active": False})
    product.refresh_from_db()
    assert (product.name, product.is_active, product.charge_initiation_fee) == ("Monthly (old)", False, False)
    za.refresh_from_db()
    assert za.charge_initiation_fee is True  # a South African product keeps the cap's fee
