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
    employers = page.locator("nav.mainnav a", has_text="Employers")
    assert not employers.is_visible()  # inside the closed Clients menu
    page.click("nav.mainnav summary:has-text('Clients')")
    employers.click()
    page.wait_for_url(f"{live_server.url}/employers/")


def test_the_menus_open_from_the_keyboard_one_at_a_time(page, live_server):
    entity = factories.make_entity(country="ZA")
    factories.make_admin(entity=entity, username="keyboarduser")
    page.set_viewport_size({"width": 1280, "height": 800})
    _sign_in(page, live_server, "keyboarduser")
    clients, loans = page.locator("details[data-menu=clients]"), page.locator("details[data-menu=loans]")
    page.focus("details[data-menu=clients] > summary")
    page.keyboard.press("Enter")
    assert clients.evaluate("d => d.open") and page.locator("nav.mainnav a", has_text="New client").is_visible()
    page.focus("details[data-menu=loans] > summary")
    page.keyboard.press("Enter")
    assert loans.evaluate("d => d.open") and not clients.evaluate("d => d.open")
    page.keyboard.press("Escape")
    assert not loans.evaluate("d => d.open")
    page.focus("details[data-menu=loans] > summary")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/loans/")
    assert page.locator("details[data-menu=loans].active").count() == 1


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
