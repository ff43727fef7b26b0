"""A mobile-money provider's base URL is typed by an entity's administrator and the server then
calls it with the setup's credentials: it may not point at an internal address (SSRF,
core/destination.py). Refused on save (naming the field, nothing written) and before every call
(nothing sent, audited, the reason shown)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse

from imali.core.models import AuditEntry
from imali.mobilemoney import disbursements, services
from imali.mobilemoney.models import Disbursement, DisbursementStatus, ProviderSetup

from .conftest import mpesa_setup
from .test_disbursements import approved_loan

REFUSED = ["https://169.254.169.254/", "http://mpesa.example.co.ke/", "https://user:pw@mpesa.example.co.ke/",
           "https://10.0.0.5/", "https://2130706433/", "https://0x7f.1/", "https://metadata.google.internal/",
           "https://[fd00:ec2::254]/"]


def _form(base_url: str, short_code: str = "600999") -> dict:
    return {"provider": "mpesa", "is_active": "on", "base_url": base_url, "short_code": short_code,
            "consumer_key": "key", "consumer_secret": "s3cret", "callback_base_url": "http://127.0.0.1:8000/"}


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED)
def test_the_setup_screen_refuses_an_internal_address_naming_the_field(client, lender_user, url):
    client.force_login(lender_user)
    audits = AuditEntry.objects.filter(action="mobilemoney.setup_changed").count()
    response = client.post(reverse("web:mm_setup_create"), _form(url))
    assert response.status_code in (200, 400)
    assert "base_url" in response.context["form"].errors
    assert not ProviderSetup.objects.filter(short_code="600999").exists()
    assert AuditEntry.objects.filter(action="mobilemoney.setup_changed").count() == audits


@pytest.mark.django_db
def test_an_edit_to_an_internal_address_writes_nothing(client, lender_user):
    client.force_login(lender_user)
    assert client.post(reverse("web:mm_setup_create"), _form("http://127.0.0.1:8051")).status_code == 302
    setup = ProviderSetup.objects.get(short_code="600999")
    response = client.post(reverse("web:mm_setup_edit", kwargs={"providersetup_id": setup.pk}),
                           {**_form("https://169.254.169.254/latest/meta-data/"), "consumer_secret": ""})
    assert "base_url" in response.context["form"].errors
    setup.refresh_from_db()
    assert setup.base_url == "http://127.0.0.1:8051"


@pytest.mark.django_db
def test_a_refused_address_is_named_beside_the_other_missing_fields(entity, lender_user):
    with pytest.raises(ValidationError) as refused:
        services.setup_save(entity=entity, actor=lender_user, data={
            "provider": "mpesa", "base_url": "https://169.254.169.254/", "consumer_key": "k", "consumer_secret": "s",
            "callback_base_url": "http://127.0.0.1:8000/"})
    assert refused.value.message_dict.keys() == {"base_url", "short_code"}
    assert not ProviderSetup.objects.filter(entity=entity).exists()


@pytest.mark.django_db
def test_loopback_only_where_allowed_and_the_operators_allowance(entity, lender_user):
    data = {"provider": "mpesa", "base_url": "http://localhost:8051", "short_code": "600998", "consumer_key": "k",
            "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:8000/"}
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        with pytest.raises(ValidationError) as refused:
            services.setup_save(entity=entity, actor=lender_user, data=data)
        assert refused.value.message_dict.keys() == {"base_url"}
        assert refused.value.error_dict["base_url"][0].code == "destination_refused"
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False, OUTBOUND_ALLOWED_HOSTS=["10.20.0.0/16"]):
        setup = services.setup_save(entity=entity, actor=lender_user, data={**data, "base_url": "https://10.20.0.5/"})
    assert setup.base_url == "https://10.20.0.5/"


@pytest.mark.django_db(transaction=True)
def test_a_row_saved_before_the_rule_is_not_connected_to(entity, lender_user, mpesa_peer, live_server):
    """Checked before each call: the provider receives nothing, the payment fails with the reason,
    and the refusal is audited."""
    setup = mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)
    ProviderSetup.objects.filter(pk=setup.pk).update(base_url="http://169.254.169.254")
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    d = Disbursement.objects.get(pk=d.pk)
    assert d.status == DisbursementStatus.FAILED and "refused" in d.failure_reason
    assert mpesa_peer.payments == {}
    entry = AuditEntry.objects.filter(action="mobilemoney.destination_refused", entity=entity).get()
    assert entry.after["field"] == "base_url" and entry.after["host"] == "169.254.169.254"
    with pytest.raises(ValidationError) as refused:
        services.setup_register_urls(setup=ProviderSetup.objects.get(pk=setup.pk), actor=lender_user)
    assert refused.value.message_dict.keys() == {"base_url"}
    assert ProviderSetup.objects.get(pk=setup.pk).registered_at is None


@pytest.mark.django_db(transaction=True)
def test_the_local_peer_is_refused_where_loopback_is_not_allowed(entity, lender_user, mpesa_peer, live_server):
    setup = mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)
    with override_settings(OUTBOUND_ALLOW_LOOPBACK=False):
        with pytest.raises(ValidationError):
            services.setup_register_urls(setup=setup, actor=lender_user)
    assert ProviderSetup.objects.get(pk=setup.pk).registered_at is None
    services.setup_register_urls(setup=setup, actor=lender_user)  # loopback allowed again
    assert ProviderSetup.objects.get(pk=setup.pk).registered_at is not None


@pytest.mark.django_db
def test_a_refusal_met_again_and_again_is_audited_once_an_hour(entity, lender_user):
    """The recovery of stuck payments asks for the adapter on every row it retries: each refusal is
    refused (nothing sent) but the same reason is audited once an hour, and a new reason at once."""
    from imali.mobilemoney.adapters import DestinationRefused

    setup = services.setup_save(entity=entity, actor=lender_user, data={
        "provider": "mpesa", "base_url": "https://mpesa.example.co.ke/", "short_code": "600123",
        "consumer_key": "k", "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:1/"})
    ProviderSetup.objects.filter(pk=setup.pk).update(base_url="http://169.254.169.254")
    setup = ProviderSetup.objects.get(pk=setup.pk)
    refused = AuditEntry.objects.filter(action="mobilemoney.destination_refused", object_id=str(setup.pk))
    for _ in range(5):
        with pytest.raises(DestinationRefused):
            services.provider_adapter(setup)
    assert refused.count() == 1
    ProviderSetup.objects.filter(pk=setup.pk).update(base_url="http://10.0.0.7")
    setup = ProviderSetup.objects.get(pk=setup.pk)
    with pytest.raises(DestinationRefused):
        services.provider_adapter(setup)
    assert refused.count() == 2
    assert sorted(e["host"] for e in refused.values_list("after", flat=True)) == ["10.0.0.7", "169.254.169.254"]
