"""One format for money, dates and times on every screen: money "12,345.67" (currency code in front
where a figure stands alone), dates ISO, times HH:MM with the zone, date fields typed as ISO."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django import forms
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from imali.core.formatting import format_money
from imali.web.display import local_time
from imali.web.forms import IsoDateInput
from tests.loans.conftest import make_loan

pytestmark = pytest.mark.django_db

SAST = zoneinfo.ZoneInfo("Africa/Johannesburg")


@pytest.mark.parametrize(("value", "currency", "shown"), [
    (Decimal("1234567.5"), "", "1,234,567.50"),
    (Decimal("-1234.5"), "", "-1,234.50"),
    (Decimal("0"), "", "0.00"),
    (Decimal("999.995"), "", "1,000.00"),  # half up, as the book rounds
    ("2000", "ZAR", "ZAR 2,000.00"),
    (None, "ZAR", ""),
    ("n/a", "", "n/a"),
])
def test_money_is_written_one_way(value, currency, shown):
    assert format_money(value, currency) == shown
    template = "{{ v|money:c }}" if currency else "{{ v|money }}"
    assert Template(template).render(Context({"v": value, "c": currency})) == shown


def test_dates_and_times_render_iso_with_the_zone_without_a_load_tag():
    moment = dt.datetime(2026, 11, 25, 12, 5, tzinfo=dt.UTC)
    with timezone.override(SAST):
        text = Template("{{ d }}|{{ t }}|{{ t|date }}|{{ t|hhmm }}|{{ t|stamp }}|{{ d|isodate }}").render(
            Context({"d": dt.date(2026, 11, 25), "t": moment}))
    assert text == "2026-11-25|2026-11-25 14:05 SAST|2026-11-25|14:05 SAST|2026-11-25 14:05 SAST|2026-11-25"
    assert local_time(moment, "Europe/London") == "12:05 GMT"
    assert local_time(moment, "Asia/Dubai") == "16:05 UTC+04:00"  # a zone without letters shows its offset


def test_date_fields_are_typed_as_iso_and_only_iso_is_read():
    class Form(forms.Form):
        on = forms.DateField(widget=IsoDateInput())

    html = str(Form()["on"])
    assert 'type="text"' in html and 'placeholder="YYYY-MM-DD"' in html and 'pattern="\\d{4}-\\d{2}-\\d{2}"' in html
    assert Form({"on": "2026-11-25"}).is_valid()
    assert Form(initial={"on": dt.date(2026, 11, 5)})["on"].value() == dt.date(2026, 11, 5)
    assert 'value="2026-11-05"' in str(Form(initial={"on": dt.date(2026, 11, 5)})["on"])
    for ambiguous in ("11/25/2026", "25/11/2026", "03/04/2026", "Nov. 25, 2026"):
        assert not Form({"on": ambiguous}).is_valid(), ambiguous


def test_every_form_date_field_uses_the_iso_input(admin_client, entity):
    from imali.web.forms import ClientForm

    form = ClientForm(entity=entity)
    for name in ("date_of_birth", "commencement_of_service", "contract_expiry_date"):
        assert isinstance(form.fields[name].widget, IsoDateInput), name
    page = admin_client.get(reverse("web:client_create")).content.decode()
    assert 'type="date"' not in page and 'placeholder="YYYY-MM-DD"' in page


def test_loan_page_shows_money_with_separators_and_iso_dates(client, entity):
    from tests import factories

    lender = factories.make_admin(entity=entity)
    lender.disbursement_limit = Decimal("100000")
    lender.save()
    loan = make_loan(entity, user=lender, principal="7500", instalments=6, disbursed_on=dt.date(2026, 1, 5))
    client.force_login(lender)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()
    assert "7,500.00" in page and "7500.00" not in page
    assert f"{loan.total_repayable:,.2f}" in page
    assert "2026-01-05" in page
    assert not re.search(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.? \d{1,2}, \d{4}", page)
    assert 'type="date"' not in page
