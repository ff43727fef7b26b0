"""Ids a screen reads outside a form (a poller's ?id=, a POSTed list of ticked rows, a button's
value) go through core.forms.request_id / request_ids, the screens' one rule: ASCII digits, or a
400 naming the parameter. int() read '١٢' and '１２' as 12, and '²' (a digit to str.isdigit) was
a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from imali.tenancy.rights import Right
from tests import factories
from tests.messaging.test_reports import sms

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _other_shapes(pk: int) -> list[str]:
    return [str(pk).translate(ARABIC_INDIC), str(pk).translate(FULLWIDTH), f"{pk}.0", "²", "-1", "abc"]


@pytest.mark.django_db
def test_a_polled_id_in_other_digits_is_a_400_naming_the_parameter(client, login_as, entity):
    mine = sms(entity, at=timezone.now(), status="submitted")
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    url = reverse("web:messaging_outbox_status")
    assert client.get(f"{url}?id={mine.pk}").status_code == 200
    for shape in _other_shapes(mine.pk):
        response = client.get(url, {"id": [str(mine.pk), shape]})
        assert response.status_code == 400, shape
        assert "The parameter &#x27;id&#x27;" in response.content.decode()
        assert f"sms-status-{mine.pk}" not in response.content.decode()


@pytest.mark.django_db
def test_the_reply_setup_remove_button_reads_its_id_strictly(admin_client, entity, admin_user):
    from imali.messaging.models import ReplyNotifyRecipient
    from imali.messaging.replies import reply_notify_set

    target = factories.make_user(entity=entity, rights=[Right.REPORT_REPLY_DETAIL])
    reply_notify_set(actor=admin_user, entity=entity, user=target, by_email=False, in_app=True)
    url = reverse("web:messaging_replies_setup")
    for shape in _other_shapes(target.pk):
        response = admin_client.post(url, {"remove": shape})
        assert response.status_code == 400, shape
        assert "remove" in response.content.decode()
    assert ReplyNotifyRecipient.objects.filter(user=target).exists()  # nothing written
    assert admin_client.post(url, {"remove": str(target.pk)}).status_code == 302
