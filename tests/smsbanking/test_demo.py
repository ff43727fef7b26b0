"""`make demo`'s SMS banking: a person texts BALANCE from the demo phone, the ZA loan officer
records a collection, and both are answered."""

from io import StringIO

import pytest
from django.core.management import call_command

from imali.messaging.inbound import inbound_receive
from imali.messaging.models import OutboxMessage
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.demo_data import DEMO_CLIENT_PHONE, DEMO_PIN
from imali.smsbanking.models import FieldCollection
from imali.tenancy.models import User

pytestmark = pytest.mark.django_db


def test_demo_answers_balance_and_an_officer_collection():
    call_command("load_demo", stdout=StringIO())
    inbound_receive(gateway="demo", provider_id="d1", number=DEMO_CLIENT_PHONE, text="BALANCE", to_address="Imali")
    answer_pending()
    answer = OutboxMessage.objects.filter(number=DEMO_CLIENT_PHONE).latest("id")
    assert "owing" in answer.text and answer.entity.country == "ZA"
    client = answer.client
    inbound_receive(gateway="demo", provider_id="d2", number="+27825550777", text=f"BALANCE {client.number} {DEMO_PIN}",
                    to_address="Imali")
    answer_pending()
    assert "owing" in OutboxMessage.objects.filter(number="+27825550777").latest("id").text
    officer = User.objects.get(username="officer.za")
    loan = client.loans.filter(status="active").first() or client.loans.first()
    inbound_receive(gateway="demo", provider_id="d3", number=officer.cellphone, text=f"PAY {client.number}/{loan.pk} 10",
                    to_address="Imali")
    answer_pending()
    assert FieldCollection.objects.filter(officer=officer).count() == 1
    # Loading again changes nothing.
    call_command("load_demo", stdout=StringIO())
    assert OutboxMessage.objects.filter(number=DEMO_CLIENT_PHONE).count() >= 1
