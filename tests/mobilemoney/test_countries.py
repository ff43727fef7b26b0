"""A provider account is held in the lender's own currency: the loan book posts its amounts as the
entity's, so a Zambian lender's MoMo account in EUR (the MoMo sandbox's) is refused, by name."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from imali.mobilemoney.models import ProviderSetup
from imali.mobilemoney.services import setup_save
from tests import factories

pytestmark = pytest.mark.django_db

MOMO = {"provider": "momo", "base_url": "https://momo.example.com", "target_environment": "mtnzambia",
        "consumer_key": "api-user", "consumer_secret": "api-key", "subscription_key": "sub",
        "callback_base_url": "https://imali.example.com"}


def test_a_zambian_momo_account_in_another_currency_is_refused_and_nothing_saved():
    entity = factories.make_entity(country="ZM")
    with pytest.raises(ValidationError) as exc:
        setup_save(entity=entity, actor=None, data={**MOMO, "currency": "EUR"})
    assert exc.value.error_dict["currency"][0].message == (
        "The provider account must be in ZMW, the currency of this lender's loan book; leave it blank for ZMW.")
    assert not ProviderSetup.objects.filter(entity=entity).exists()


@pytest.mark.parametrize("typed", ["", "ZMW", " zmw "])
def test_the_lenders_own_currency_is_accepted_as_the_code(typed):
    entity = factories.make_entity(country="ZM")
    setup = setup_save(entity=entity, actor=None, data={**MOMO, "currency": typed})
    assert setup.currency == typed.strip().upper()
