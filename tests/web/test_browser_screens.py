"""The screens' small enhancements, in a real browser: the phone menu and the paypoint list."""

from __future__ import annotations

import pytest

from imali.clients.services import paypoint_create
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_on_a_phone_the_menu_opens_from_its_button(page, live_server):
    entity = factories.make_entity(country="ZA")
    factories.make_admin(entity=entity, username="phoneuser")
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, live_server, "phoneuser")
    menu = page.locator("nav.mainnav")
    assert not menu.is_visible()
    page.click("label.nav-toggle-label")
    assert menu.is_visible()
    page.click("nav.mainnav >> text=Employers")
    page.wait_for_url(f"{live_server.url}/employers/")


def test_the_paypoint_list_offers_only_the_chosen_employers_paypoints(page, live_server):
    entity = factories.make_entity(country="ZA")
    admin = factories.make_admin(entity=entity, username="clerk")
    alpha = factories.make_employer(entity=entity, name="Alpha Mining")
    beta = factories.make_employer(entity=entity, name="Beta Retail")
    paypoint_create(employer=alpha, actor=admin, number="1", name="Shaft One")
    paypoint_create(employer=beta, actor=admin, number="2", name="Store Two")
    _sign_in(page, live_server, "clerk")
    page.goto(f"{live_server.url}/clients/new/")
    offered = "select[name=paypoint] option:not([disabled])"
    page.select_option("select[name=employer]", str(alpha.pk))
    names = page.eval_on_selector_all(offered, "options => options.map(o => o.textContent)")
    assert any("Shaft One" in n for n in names) and not any("Store Two" in n for n in names)
    page.select_option("select[name=employer]", str(beta.pk))
    names = page.eval_on_selector_all(offered, "options => options.map(o => o.textContent)")
    assert any("Store Two" in n for n in names) and not any("Shaft One" in n for n in names)
