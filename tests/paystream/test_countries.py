"""The payment stream (NAEDO/EFT notes, DebiCheck, the banks' branch-code check digits) is South
Africa's: a lender in another country is not offered it, and no screen of it dead-ends there."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.paystream import services
from imali.paystream.demo_data import paystream_demo_ensure
from imali.paystream.models import StreamSettings
from imali.tenancy.models import Entity, Module
from imali.tenancy.rights import Right
from imali.tenancy.services import entity_create, entity_update
from tests import factories

pytestmark = pytest.mark.django_db

STREAM = Module.PAYMENT_STREAMS.value


@pytest.mark.parametrize("country", ["NA", "BW", "SZ", "ZM"])
def test_the_operator_cannot_switch_the_stream_on_outside_south_africa(operator, country):
    data = {"name": f"Lender {country}", "code": f"l-{country.lower()}", "country": country, "modules": ["maxsms", STREAM]}
    with pytest.raises(ValidationError) as exc:
        entity_create(actor=operator, data=data)
    assert "South Africa only" in exc.value.error_dict["modules"][0].message
    assert not Entity.objects.filter(code=f"l-{country.lower()}").exists()
    entity = entity_create(actor=operator, data={**data, "modules": ["maxsms"]})
    with pytest.raises(ValidationError):
        entity_update(actor=operator, entity=entity, data={"modules": ["maxsms", STREAM]})
    entity.refresh_from_db()
    assert entity.modules == ["maxsms"]


def test_a_south_african_lender_may_have_the_stream(operator):
    entity = entity_create(actor=operator, data={"name": "Lender ZA", "code": "l-za", "country": "ZA", "modules": [STREAM]})
    assert entity.has_module(Module.PAYMENT_STREAMS)


@pytest.fixture
def na_with_an_older_row():
    """A Namibian lender whose row lists the module (switched on before this rule, as the demo did)
    and a clerk holding the stream's right."""
    entity = factories.make_entity(country="NA")
    Entity.objects.filter(pk=entity.pk).update(modules=[*entity.modules, STREAM])
    entity.refresh_from_db()
    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.CAPTURE_LOANS,
                                                       Right.PAYMENT_STREAM_WEB_SERVICES])
    return entity, clerk


def test_an_older_namibian_row_has_no_stream_and_its_services_say_why(na_with_an_older_row):
    entity, clerk = na_with_an_older_row
    assert not entity.has_module(Module.PAYMENT_STREAMS)
    with pytest.raises(ValidationError) as exc:
        services.require_access(entity=entity, actor=clerk)
    assert "not offered to a lender in Namibia" in exc.value.messages[0]


def test_namibian_staff_see_no_stream_screen_link_or_menu(client, na_with_an_older_row):
    entity, clerk = na_with_an_older_row
    borrower = factories.make_client(entity=entity)
    client.force_login(clerk)
    assert not clerk.has_right(Right.PAYMENT_STREAM_WEB_SERVICES)
    page = client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk})).content.decode()
    assert reverse("web:paystream_client", kwargs={"client_id": borrower.pk}) not in page
    assert reverse("web:paystream_requests") not in page and reverse("web:paystream_settings") not in page
    for url in (reverse("web:paystream_client", kwargs={"client_id": borrower.pk}), reverse("web:paystream_settings"),
                reverse("web:paystream_requests")):
        assert client.get(url).status_code == 403


def test_the_demo_switches_the_stream_on_for_its_south_african_lender_only(operator):
    za, na = factories.make_entity(country="ZA"), factories.make_entity(country="NA")
    for entity in (za, na):
        factories.make_admin(entity=entity).roles.add(entity.roles.get(name="Administrator"))
    paystream_demo_ensure(entity_codes=[za.code, na.code])
    za.refresh_from_db()
    na.refresh_from_db()
    assert STREAM in za.modules and StreamSettings.objects.filter(entity=za).exists()
    assert STREAM not in na.modules and not StreamSettings.objects.filter(entity=na).exists()


def test_the_entity_edit_form_of_a_namibian_lender_offers_no_stream(na_with_an_older_row):
    from imali.web.forms import EntityEditForm

    entity, _ = na_with_an_older_row
    assert STREAM not in {m for m, _ in EntityEditForm(instance=entity).fields["modules"].choices}
    za = factories.make_entity(country="ZA")
    assert STREAM in {m for m, _ in EntityEditForm(instance=za).fields["modules"].choices}


def test_a_namibian_role_is_not_offered_the_streams_right(na_with_an_older_row):
    from imali.web.forms import RoleForm

    entity, _ = na_with_an_older_row
    offered = {v for _, rights in RoleForm(entity=entity).fields["rights"].choices for v, _ in rights}
    assert Right.PAYMENT_STREAM_WEB_SERVICES.value not in offered and Right.APPROVE_LOANS.value in offered
    za = factories.make_entity(country="ZA")
    offered = {v for _, rights in RoleForm(entity=za).fields["rights"].choices for v, _ in rights}
    assert Right.PAYMENT_STREAM_WEB_SERVICES.value in offered


def test_an_older_namibian_row_can_be_renamed_without_being_told_about_its_stream(operator, na_with_an_older_row):
    # The row lists the stream from before the rule (it is off: has_module). A change that does not
    # touch the modules or the country is not refused for it; adding it, or moving a ZA lender with
    # a stream to Namibia, still is.
    entity, _ = na_with_an_older_row
    entity_update(actor=operator, entity=entity, data={"name": "Renamed lender"})
    entity.refresh_from_db()
    assert entity.name == "Renamed lender" and not entity.has_module(Module.PAYMENT_STREAMS)
    za = entity_create(actor=operator, data={"name": "Lender ZA", "code": "l-za", "country": "ZA", "modules": [STREAM]})
    with pytest.raises(ValidationError) as exc:
        entity_update(actor=operator, entity=za, data={"country": "NA"})
    assert "not to a lender in Namibia" in exc.value.error_dict["modules"][0].message
