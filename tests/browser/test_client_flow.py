"""A person signs in, creates a client and finds them again by search — in a real browser."""

from __future__ import annotations

import re

import pytest

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_create_a_client_and_find_them(page, live_server):
    entity = factories.make_entity(country="ZA")
    factories.make_user(entity=entity, username="officer", password="correct-horse-battery",
                        rights=["view_clients", "manage_clients"])

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert entity.name in page.content()

    page.goto(f"{live_server.url}/clients/new/")
    page.select_option("select[name=branch]", index=1)
    page.select_option("select[name=title]", "Mr")
    page.fill("input[name=full_names]", "Sipho Andile")
    page.fill("input[name=surname]", "Ndlovu")
    page.select_option("select[name=id_type]", "sa_id")
    page.fill("input[name=id_number]", "7503305044089")
    page.fill("input[name=date_of_birth]", "1975-03-30")
    page.select_option("select[name=gender]", "M")
    page.fill("input[name=cellphone]", "082 555 0101")
    page.click("form#client-form button[type=submit]")
    # The new client's own page (a number): the glob /clients/*/ matches /clients/new/ as well, where
    # the page already is, so it would not wait for the client to be created.
    page.wait_for_url(re.compile(rf"^{re.escape(live_server.url)}/clients/\d+/$"))
    client = Client.objects.get(entity=entity, surname="Ndlovu")
    assert client.cellphone == "+27825550101"
    assert AuditEntry.objects.filter(action=AuditAction.CLIENT_CREATED, object_id=str(client.pk)).exists()

    for query in ("Ndlovu", "7503305044089", "0825550101", str(client.number)):
        page.goto(f"{live_server.url}/clients/?q={query}")
        row = page.locator("table tbody tr", has_text="Ndlovu")
        assert row.count() == 1, f"search for {query!r} did not find the client"
    row.locator("a").first.click()
    page.wait_for_url(f"{live_server.url}/clients/{client.pk}/")
    assert "Sipho Andile" in page.content()


def test_a_bad_id_number_is_shown_next_to_its_field(page, live_server):
    entity = factories.make_entity(country="ZA")
    factories.make_user(entity=entity, username="officer2", password="correct-horse-battery",
                        rights=["view_clients", "manage_clients"])
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "officer2")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/clients/new/")
    page.select_option("select[name=branch]", index=1)
    page.fill("input[name=full_names]", "Lerato")
    page.fill("input[name=surname]", "Khumalo")
    page.select_option("select[name=id_type]", "sa_id")
    page.fill("input[name=id_number]", "8503305044089")
    page.fill("input[name=date_of_birth]", "1985-03-30")
    page.select_option("select[name=gender]", "M")
    # The refused form comes back on the same URL: wait for that new page, or the form read below
    # is the one just filled in, before the answer.
    with page.expect_navigation(url=f"{live_server.url}/clients/new/"):
        page.click("form#client-form button[type=submit]")
    assert "checksum" in page.locator("#client-form").inner_text().lower()
    assert not Client.objects.filter(surname="Khumalo").exists()
