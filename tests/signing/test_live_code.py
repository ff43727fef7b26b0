"""The signing page's code status updates without a reload: the code SMS's delivery and the code's
own state come from a fragment the page polls (htmx) under the page's right and entity, and the
polling stops once the code is used and its SMS final."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from imali.messaging.models import OutboxMessage
from imali.signing.models import Challenge
from imali.tenancy.rights import Right
from tests import factories

from .conftest import code_sent

pytestmark = pytest.mark.django_db


def _enrol(client, borrower):
    url = reverse("web:signing_enrolment", kwargs={"client_id": borrower.pk})
    client.post(url, {"action": "send"})
    challenge = Challenge.objects.get(subject_key=f"enrol:client:{borrower.pk}", status="pending")
    client.post(url, {"action": "verify", "challenge": challenge.public_id, "code": code_sent(challenge)})


def test_the_code_status_is_live_on_the_signing_page(client, officer, setup, borrower, application,
                                                     django_assert_num_queries):
    client.force_login(officer)
    _enrol(client, borrower)
    loan_url = reverse("web:signing_loan", kwargs={"loan_id": application.pk})
    client.post(loan_url, {"action": "send"})
    challenge = Challenge.objects.get(subject_key=f"loan:{application.pk}", status="pending")
    status_url = reverse("web:signing_loan_code_status", kwargs={"loan_id": application.pk})
    page = client.get(loan_url).content.decode()
    assert f'<span id="otp-sms-{challenge.public_id}">Queued</span>' in page
    assert f'<span id="otp-code-{challenge.public_id}">Sent, waiting for the code</span>' in page
    assert f'hx-get="{status_url}" hx-trigger="every 3s"' in page

    OutboxMessage.objects.filter(pk=challenge.outbox_message_id).update(status="delivered")
    with django_assert_num_queries(7):  # session, user, entity, rights (two), the loan, the code with its SMS
        fragment = client.get(status_url).content.decode()
    assert f'<span id="otp-sms-{challenge.public_id}" hx-swap-oob="true">Delivered</span>' in fragment
    assert 'data-polling="yes"' in fragment  # the code is still waiting
    assert code_sent(challenge) not in fragment and "code_hash" not in fragment

    client.post(loan_url, {"action": "verify", "challenge": challenge.public_id, "code": code_sent(challenge)})
    fragment = client.get(status_url).content.decode()
    assert f'<span id="otp-code-{challenge.public_id}" hx-swap-oob="true">Verified</span>' in fragment
    poller = re.search(r'<div id="otp-poll"[^>]*>', fragment).group(0)
    assert 'data-polling="no"' in poller and "hx-get" not in poller


def test_the_code_status_keeps_the_pages_checks(client, officer, other_entity, setup, borrower, application):
    client.force_login(officer)
    status_url = reverse("web:signing_loan_code_status", kwargs={"loan_id": application.pk})
    assert 'data-polling="no"' in client.get(status_url).content.decode()  # no code sent yet: nothing to watch
    _enrol(client, borrower)
    client.post(reverse("web:signing_loan", kwargs={"loan_id": application.pk}), {"action": "send"})
    client.force_login(factories.make_user(entity=application.entity, rights=[Right.VIEW_CLIENTS]))
    assert client.get(status_url).status_code == 403
    client.force_login(factories.make_user(entity=other_entity, rights=[Right.CAPTURE_LOANS]))
    assert client.get(status_url).status_code == 404
    client.force_login(officer)
    assert client.post(status_url).status_code == 405


def test_a_mandate_page_watches_its_own_code(client, officer, setup, borrower, application):
    client.force_login(officer)
    _enrol(client, borrower)
    response = client.post(reverse("web:signing_mandate_create", kwargs={"loan_id": application.pk}),
                           {"kind": "seft", "collection_day": "25", "account": borrower.accounts.first().pk})
    mandate_page = response["Location"]
    client.post(mandate_page, {"action": "send"})
    challenge = Challenge.objects.get(subject_key__startswith="mandate:", status="pending")
    status_url = reverse("web:signing_mandate_code_status", kwargs={"mandate_id": int(challenge.subject_key.split(":")[1])})
    page = client.get(mandate_page).content.decode()
    assert f'hx-get="{status_url}"' in page
    fragment = client.get(status_url).content.decode()
    assert f'<span id="otp-sms-{challenge.public_id}" hx-swap-oob="true">Queued</span>' in fragment
