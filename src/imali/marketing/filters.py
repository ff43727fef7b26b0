"""The filters of a client-marketing run (seed 002, "Report Filters") as one form: the screen draws
it, the API and the service check data through it. Every field is checked on its own (a bad value is
an error naming the field), then together (a range the wrong way round, a paypoint of another
employer, a branch outside the region, overdues "only" with totally-paid clients only...). An
object of another entity is "not one of the choices", as if it did not exist."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms

from imali.clients.models import (
    AccountPurpose,
    ClientStatus,
    EconomicSector,
    Employer,
    EmployerClassification,
    PaymentFrequency,
    Paypoint,
)
from imali.core.dates import DAY_RANGE_MESSAGE, day_in_range
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.loans.models import PaybackType
from imali.tenancy.models import Branch, Entity, Region, User

from . import selectors

MAX_CLIENT_NUMBER = 10**15
# Dates a lender's book can hold: a typo such as 0226-03-01 or 9999-12-31 is refused, naming the field.

OVERDUES = [("include", "Include clients with overdue payments"), ("exclude", "Exclude clients with overdue payments"),
            ("only", "Only clients with overdue payments")]
MONTHS = [("", "Not selected"), ("1", "1 month"), ("2", "2 months"), ("3", "3 months"), ("all", "All")]
ACCOUNT_TYPES = [("", "Any"), (AccountPurpose.PAYOUT.value, "Payout account"),
                 (AccountPurpose.PAYBACK.value, "Payback account")]

# The names of the filters, in the seed's order (the stored filters, the API body and the form).
FILTER_NAMES = ("branch", "region", "created_by", "salesperson", "number_from", "number_to", "client_status",
                "payment_frequency", "area", "bank", "bank_account_type", "created_from", "created_to", "payback_type",
                "overdues", "paid_from", "paid_to", "months_outstanding", "calculate_settlement",
                "only_change_and_debt", "employer", "paypoint", "employer_classification", "economic_sector")


def _blank(choices) -> list[tuple[str, str]]:
    return [("", "Any"), *choices]


class DataSetFilterForm(forms.Form):
    branch = StrictModelChoiceField(queryset=Branch.objects.none(), required=False, empty_label="All branches")
    region = StrictModelChoiceField(queryset=Region.objects.none(), required=False, empty_label="All regions")
    created_by = StrictModelChoiceField(queryset=User.objects.none(), required=False, empty_label="Any user",
                                        label="User who created the client")
    salesperson = StrictModelChoiceField(queryset=User.objects.none(), required=False, empty_label="Any salesperson")
    number_from = StrictIntegerFormField(required=False, min_value=1, max_value=MAX_CLIENT_NUMBER, label="Client number from")
    number_to = StrictIntegerFormField(required=False, min_value=1, max_value=MAX_CLIENT_NUMBER, label="Client number to")
    client_status = forms.ChoiceField(choices=_blank(ClientStatus.choices), required=False)
    payment_frequency = forms.ChoiceField(choices=_blank(PaymentFrequency.choices), required=False)
    area = forms.ChoiceField(choices=[("", "Any")], required=False, label="Client area")
    bank = forms.ChoiceField(choices=[("", "Any")], required=False)
    bank_account_type = forms.ChoiceField(choices=ACCOUNT_TYPES, required=False, label="Bank account type")
    created_from = forms.DateField(required=False, label="Client created from")
    created_to = forms.DateField(required=False, label="Client created to")
    payback_type = forms.ChoiceField(choices=_blank(PaybackType.choices), required=False, label="Receipt (payback) type")
    overdues = forms.ChoiceField(choices=OVERDUES, required=False, initial="include", label="Overdues")
    paid_from = forms.DateField(required=False, label="Totally paid from")
    paid_to = forms.DateField(required=False, label="Totally paid to")
    months_outstanding = forms.ChoiceField(choices=MONTHS, required=False, label="Months outstanding")
    calculate_settlement = forms.BooleanField(required=False, label="Calculate settlement amount")
    only_change_and_debt = forms.BooleanField(required=False, label="Only change available and non-loan debt")
    employer = StrictModelChoiceField(queryset=Employer.objects.none(), required=False, empty_label="All employers")
    paypoint = StrictModelChoiceField(queryset=Paypoint.objects.none(), required=False, empty_label="All paypoints")
    employer_classification = forms.ChoiceField(choices=_blank(EmployerClassification.choices), required=False)
    economic_sector = forms.ChoiceField(choices=_blank(EconomicSector.choices), required=False,
                                        label="Employer economic sector")

    def __init__(self, *args, entity: Entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.entity = entity
        self.fields["branch"].queryset = Branch.objects.filter(entity=entity)
        self.fields["region"].queryset = Region.objects.filter(entity=entity)
        users = User.objects.filter(entity=entity).order_by("username")
        self.fields["created_by"].queryset = users
        self.fields["salesperson"].queryset = users
        self.fields["employer"].queryset = Employer.objects.filter(entity=entity)
        self.fields["paypoint"].queryset = Paypoint.objects.filter(employer__entity=entity).select_related("employer")
        self.fields["area"].choices = [("", "Any"), *((a, a) for a in selectors.area_choices(entity=entity))]
        self.fields["bank"].choices = [("", "Any"), *((b, b) for b in selectors.bank_choices(entity=entity))]
        from imali.web.forms import IsoDateInput  # the one date input of every screen

        for name in ("created_from", "created_to", "paid_from", "paid_to"):
            self.fields[name].widget = IsoDateInput()
            self.fields[name].input_formats = ["%Y-%m-%d"]

    def clean(self):
        data = super().clean()
        for name in ("created_from", "created_to", "paid_from", "paid_to"):
            day = data.get(name)
            if day is not None and not day_in_range(day):
                self.add_error(name, DAY_RANGE_MESSAGE)
                data.pop(name, None)
        for start, end, what in (("number_from", "number_to", "client number"), ("created_from", "created_to", "date"),
                                 ("paid_from", "paid_to", "date")):
            if data.get(start) is not None and data.get(end) is not None and data[end] < data[start]:
                self.add_error(end, f"The last {what} is before the first.")
        if bool(data.get("paid_from")) != bool(data.get("paid_to")) and not (self.has_error("paid_from")
                                                                             or self.has_error("paid_to")):
            missing = "paid_to" if data.get("paid_from") else "paid_from"
            self.add_error(missing, "Give both dates of the totally-paid range, or neither.")
        branch, region = data.get("branch"), data.get("region")
        if branch and region and branch.region_id != region.pk:
            self.add_error("branch", f"Branch {branch} is not in region {region}: no client can match both.")
        employer, paypoint = data.get("employer"), data.get("paypoint")
        if employer and paypoint and paypoint.employer_id != employer.pk:
            self.add_error("paypoint", f"Paypoint {paypoint} belongs to another employer than {employer}.")
        if employer and data.get("employer_classification") and employer.classification != data["employer_classification"]:
            self.add_error("employer_classification",
                           f"{employer} is classified {employer.get_classification_display()}: no client can match both.")
        if employer and data.get("economic_sector") and employer.economic_sector != data["economic_sector"]:
            self.add_error("economic_sector",
                           f"{employer} is in the sector {employer.get_economic_sector_display()}: no client can match both.")
        if (data.get("overdues") == "only" and data.get("paid_from") and data.get("paid_to")
                and not data.get("months_outstanding")):
            self.add_error("overdues", "Totally paid clients owe nothing, so none has overdue payments: choose months "
                                       "outstanding too, or do not ask for overdue clients only.")
        return data

    def filters(self) -> dict:
        """The checked filters as stored (JSON: ids as numbers, dates as ISO text), empty ones left out."""
        out: dict = {}
        for name in FILTER_NAMES:
            value = self.cleaned_data.get(name)
            if value in (None, "", False):
                continue
            if hasattr(value, "pk"):
                value = value.pk
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            out[name] = value
        if out.get("overdues") == "include":
            del out["overdues"]  # the default: no filter
        return out


def filters_check(*, entity: Entity, data: Mapping) -> dict:
    """Check filters given as data (the API, a rerun): the stored form, or a ValidationError naming
    each bad field; a name that is not a filter is refused rather than ignored."""
    from django.core.exceptions import ValidationError

    from .errors import MarketingError

    unknown = [k for k in data if k not in FILTER_NAMES]
    form = DataSetFilterForm({k: v for k, v in data.items() if v is not None}, entity=entity)
    errors: dict = {}
    if not form.is_valid():
        errors.update({k: [ValidationError(m, code=MarketingError.INVALID_CHOICE.value) for m in v]
                       for k, v in form.errors.items()})
    for name in unknown:
        errors[name] = [ValidationError("Not a filter of client marketing.", code=MarketingError.NOT_A_FILTER.value)]
    if errors:
        raise ValidationError(errors)
    return form.filters()


def filters_description(*, entity: Entity, filters: Mapping) -> list[tuple[str, str]]:
    """The filters in people's words (the data set page, the logs, the audit entry)."""
    form = DataSetFilterForm(entity=entity)
    out = []
    models = {"branch": Branch, "region": Region, "created_by": User, "salesperson": User, "employer": Employer,
              "paypoint": Paypoint}
    for name in FILTER_NAMES:
        if name not in filters:
            continue
        field, value = form.fields[name], filters[name]
        if name in models:
            obj = models[name].objects.filter(pk=value).first()
            shown = (obj.get_full_name() or obj.username) if isinstance(obj, User) else str(obj or value)
        elif isinstance(value, bool):
            shown = "Yes" if value else "No"
        elif getattr(field, "choices", None) and name not in ("area", "bank"):
            shown = dict(field.choices).get(value, value)
        else:
            shown = str(value)
        out.append((str(field.label or name.replace("_", " ").capitalize()), str(shown)))
    return out
