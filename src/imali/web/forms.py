"""Forms of the web screens. They parse what the browser sent (types, choices, entity-limited
querysets) and hand it to the services, which hold the rules; a service's ValidationError is put
back onto the form field it names, so every bad value shows next to its input."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from decimal import Decimal

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.models import fields_for_model, model_to_dict

from imali.clients.models import Client, ClientAccount, Employer, Paypoint
from imali.clients.validation import clean_client_fields
from imali.core.countries import COUNTRY_FACTS, Country, payment_streams_offered
from imali.core.forms import (
    StrictIntegerFormField,
    StrictModelChoiceField,
    StrictModelMultipleChoiceField,
    strict_formfield,
)
from imali.core.idnumbers import IdType
from imali.core.models import AuditAction
from imali.core.money import DECIMAL_PLACES, MAX_AMOUNT, parse_decimal
from imali.loans.models import payback_types_for
from imali.tenancy.models import Branch, Entity, Module, Region, Role, User
from imali.tenancy.rights import Right


class StrictDecimalFormField(forms.DecimalField):
    """A number typed into a form, read exactly as the API and the services read it
    (core.money.parse_decimal): ASCII digits, at most `places` decimal places, no exponent, finite,
    from `minimum` (excluded unless `allow_minimum`) to `maximum`. Django's DecimalField would take
    "1e10" and Arabic-Indic or fullwidth digits; this one names the field and keeps the value."""

    def __init__(self, *, places: int, maximum: Decimal, minimum: Decimal = Decimal(0), allow_minimum: bool = True,
                 **kwargs):
        self.places, self.minimum, self.allow_minimum, self.maximum = places, minimum, allow_minimum, maximum
        # The bounds also go on the input (min, max, step) so the browser says so before sending.
        lowest = minimum if allow_minimum else minimum + Decimal(1).scaleb(-places)
        kwargs.setdefault("widget", forms.NumberInput(attrs={"inputmode": "decimal"}))
        super().__init__(max_value=maximum, min_value=lowest, decimal_places=places, **kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_decimal(value, field="value", places=self.places, minimum=self.minimum,
                                 allow_minimum=self.allow_minimum, maximum=self.maximum)
        except TypeError:
            raise ValidationError(f"'{value}' is not a number.", code="invalid_amount") from None
        except ValidationError as exc:
            refusal = exc.error_dict["value"][0]
            raise ValidationError(refusal.messages[0], code=refusal.code) from None


class MoneyFormField(StrictDecimalFormField):
    """An amount of money (core.money.parse_amount): above zero, or zero too where `allow_zero`;
    at most `maximum` (MAX_AMOUNT unless the form knows a smaller bound). The web's one money field."""

    def __init__(self, *, allow_zero: bool = False, maximum: Decimal = MAX_AMOUNT, **kwargs):
        super().__init__(places=DECIMAL_PLACES, maximum=maximum, allow_minimum=allow_zero, **kwargs)


class RateFormField(StrictDecimalFormField):
    """A percentage (interest per month, VAT): zero to 100 with up to `places` decimal places."""

    def __init__(self, *, places: int = 4, **kwargs):
        super().__init__(places=places, maximum=Decimal(100), **kwargs)


def form_status(*given: forms.Form | None) -> int:
    """The status of a page that shows forms: 400 when a submitted one is refused (its errors on
    the page, nothing written), 200 otherwise. Every screen's `render` passes it the forms bound to
    the POST (not a filter form bound to request.GET: a GET stays a 200). htmx swaps a 400 answer
    to a form it sent too (static/web/imali.js), so the errors still show there."""
    return 400 if any(form is not None and form.is_bound and form.errors for form in given) else 200


def apply_service_errors(form: forms.Form, exc: ValidationError, field_map: Mapping[str, str] | None = None) -> None:
    """Attach a service's ValidationError to `form`: each field's errors on that field; an error
    about a field the form does not show goes to the top of the form, still naming the field."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, errors in exc.error_dict.items():
        name = field_map.get(field, field)
        if name in form.fields:
            form.add_error(name, errors)
        elif field == NON_FIELD_ERRORS:
            form.add_error(None, errors)
        else:
            label = field.replace("_", " ").capitalize()
            form.add_error(None, [f"{label}: {message}" for error in errors for message in error.messages])


class IsoDateInput(forms.DateInput):
    """Every date field: typed as YYYY-MM-DD, the one format every screen, PDF and export shows.
    A text input, not type="date": browsers draw that one in the reader's locale (mm/dd/yyyy for
    many), which is the ambiguity this removes. The server reads ISO dates only (the format module)."""

    input_type = "text"

    def __init__(self, attrs=None):
        base = {"placeholder": "YYYY-MM-DD", "pattern": r"\d{4}-\d{2}-\d{2}", "inputmode": "numeric",
                "maxlength": "10", "autocomplete": "off", "class": "date-input",
                "title": "A date as year-month-day, e.g. 2026-11-25"}
        super().__init__(attrs={**base, **(attrs or {})}, format="%Y-%m-%d")


def _date_widget() -> forms.DateInput:
    return IsoDateInput()


class FieldsetsMixin:
    """Forms that group their fields under headings: FIELDSETS = [(heading, [field names])]."""

    FIELDSETS: list[tuple[str, list[str]]] = []

    def fieldsets(self):
        return [(heading, [self[name] for name in names if name in self.fields]) for heading, names in self.FIELDSETS]


# --- Sign-in --------------------------------------------------------------------------------------


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


# --- Clients --------------------------------------------------------------------------------------

CLIENT_FIELDSETS: list[tuple[str, list[str]]] = [
    ("Identity", ["title", "initials", "full_names", "name", "surname", "id_type", "id_number", "gender", "date_of_birth"]),
    ("Contact", ["cellphone", "home_phone", "work_phone", "email", "physical_address", "postal_address", "area"]),
    ("Employment", ["employer", "paypoint", "employee_number", "occupation", "appointment_type",
                    "commencement_of_service", "contract_expiry_date", "other_employer_reference"]),
    ("Income and payment", ["salary", "bonus_month", "payment_frequency", "payment_day", "payment_move_direction", "credit_limit",
                            "payback_type", "available_for_instalment", "budget_available_for_instalment"]),
    ("Administration and flags", ["branch", "status", "salesperson", "tax_number", "original_client_number",
                                  "new_loans_allowed", "marketing_consent", "insolvent", "garnishee",
                                  "historically_disadvantaged", "marketing_info", "notes"]),
]
LABELS = {"id_type": "ID type", "id_number": "ID number"}
CLIENT_FORM_FIELDS = [name for _, names in CLIENT_FIELDSETS for name in names]
_PHONE_FIELDS = ("cellphone", "home_phone", "work_phone")


class PaypointSelect(forms.Select):
    """Each option carries its employer, so the page can offer only the chosen employer's paypoints."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-employer"] = str(instance.employer_id)
        return option


class PaypointChoiceField(StrictModelChoiceField):
    widget = PaypointSelect

    def label_from_instance(self, obj):
        return f"{obj.employer.name}: {obj.number} {obj.name}"


class ClientForm(FieldsetsMixin, forms.Form):
    FIELDSETS = CLIENT_FIELDSETS

    def __init__(self, *args, entity: Entity, instance: Client | None = None, default_branch: Branch | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault("initial", model_to_dict(instance, fields=CLIENT_FORM_FIELDS))
        else:
            kwargs.setdefault("initial", {"id_type": COUNTRY_FACTS[entity.country].id_type_default,
                                          "branch": getattr(default_branch, "pk", None)})
        super().__init__(*args, **kwargs)
        widgets = {name: _date_widget() for name in ("date_of_birth", "commencement_of_service", "contract_expiry_date")}
        widgets.update({name: forms.Textarea(attrs={"rows": 2}) for name in ("physical_address", "postal_address", "notes")})
        self.fields.update(fields_for_model(Client, fields=CLIENT_FORM_FIELDS, widgets=widgets, labels=LABELS,
                                             formfield_callback=strict_formfield))
        # Phones are parsed by the service for the entity's country; let people type spaces.
        for name in _PHONE_FIELDS:
            self.fields[name] = forms.CharField(
                required=False, max_length=30, label=self.fields[name].label,
                widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            )
        # The service fills these from the full names when left empty.
        self.fields["name"].required = False
        self.fields["name"].help_text = "The name the client goes by; empty means the first of the full names."
        self.fields["initials"].help_text = "Empty means the initials of the full names."
        self.fields["branch"].queryset = Branch.objects.filter(entity=entity)
        self.fields["employer"].queryset = Employer.objects.filter(entity=entity)
        self.fields["paypoint"] = PaypointChoiceField(
            queryset=Paypoint.objects.filter(employer__entity=entity).select_related("employer"), required=False,
            label="Paypoint", widget=PaypointSelect(attrs={"data-follows": "employer"}),
        )
        self.fields["salesperson"].queryset = User.objects.filter(entity=entity, is_active=True)
        # Outside South Africa neither its ID number nor its debit streams (NAEDO, DebiCheck,
        # Social-grant EFT) are offered; a stored one stays listed, so saving says why it must change.
        kept = {getattr(instance, "id_type", ""), getattr(instance, "payback_type", "")}
        if entity.country != Country.ZA:
            self.fields["id_type"].choices = [(v, label) for v, label in self.fields["id_type"].choices
                                              if v != IdType.SA_ID or v in kept]
        offered = {v for v, _ in payback_types_for(entity.country)} | kept | {""}
        self.fields["payback_type"].choices = [(v, label) for v, label in self.fields["payback_type"].choices if v in offered]
        for name in ("salary", "credit_limit", "available_for_instalment", "budget_available_for_instalment"):
            self.fields[name] = MoneyFormField(allow_zero=True, required=False, label=self.fields[name].label)
        # Re-order after replacing fields so the page follows the fieldsets.
        self.order_fields(CLIENT_FORM_FIELDS)
        self.entity = entity

    def clean(self):
        """Run the clients app's field rules on what parsed, so a form with one badly typed value
        still shows every other bad value at once. The service applies them again on save."""
        cleaned = super().clean()
        try:
            clean_client_fields(dict(cleaned), country=self.entity.country)
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                if field in self.fields and field not in self.errors:
                    self.add_error(field, errors)
        return cleaned


class ClientSearchForm(forms.Form):
    q = forms.CharField(
        required=False, max_length=100, label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Number, ID number, name or cellphone", "autofocus": True}),
    )


ACCOUNT_FIELDS = ["kind", "purpose", "bank_name", "branch_code", "account_number", "account_type", "wallet_provider", "wallet_number"]


class ClientAccountForm(FieldsetsMixin, forms.Form):
    FIELDSETS = [("Account", ["kind", "purpose"]),
                 ("Bank account", ["bank_name", "branch_code", "account_number", "account_type"]),
                 ("Wallet", ["wallet_provider", "wallet_number"])]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(fields_for_model(ClientAccount, fields=ACCOUNT_FIELDS, formfield_callback=strict_formfield))
        self.fields["wallet_number"] = forms.CharField(required=False, max_length=30, label="Wallet number",
                                                       widget=forms.TextInput(attrs={"type": "tel"}))


class ClientNoteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Note")
    is_display_note = forms.BooleanField(required=False, label="Show when the client is opened")


# --- Employers ------------------------------------------------------------------------------------

EMPLOYER_FIELDS = ["name", "classification", "economic_sector", "telephone", "address"]


class EmployerForm(forms.Form):
    def __init__(self, *args, instance: Employer | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault("initial", model_to_dict(instance, fields=EMPLOYER_FIELDS))
        super().__init__(*args, **kwargs)
        self.fields.update(fields_for_model(Employer, fields=EMPLOYER_FIELDS, widgets={"address": forms.Textarea(attrs={"rows": 2})},
                                             formfield_callback=strict_formfield))
        self.fields["telephone"] = forms.CharField(required=False, max_length=30, label="Telephone",
                                                   widget=forms.TextInput(attrs={"type": "tel"}))
        self.order_fields(EMPLOYER_FIELDS)


class PaypointForm(forms.Form):
    number = forms.CharField(max_length=20)
    name = forms.CharField(max_length=120)
    address = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, instance: Paypoint | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault("initial", model_to_dict(instance, fields=["number", "name", "address"]))
        super().__init__(*args, **kwargs)


# --- Administration -------------------------------------------------------------------------------

USER_FIELDS = ["username", "first_name", "last_name", "email", "cellphone", "home_branch", "is_active", "disbursement_limit"]


class UserForm(FieldsetsMixin, forms.Form):
    FIELDSETS = [
        ("Sign-in", ["username", "password", "password_confirm", "is_active"]),
        ("Person", ["first_name", "last_name", "email", "cellphone"]),
        ("Work", ["home_branch", "roles", "disbursement_limit"]),
    ]
    username = forms.CharField(max_length=150)
    first_name = forms.CharField(max_length=150)
    last_name = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    cellphone = forms.CharField(max_length=30, help_text="Needed for sign-in codes and MIS SMS.",
                                widget=forms.TextInput(attrs={"type": "tel"}))
    home_branch = StrictModelChoiceField(queryset=Branch.objects.none(), required=False)
    roles = StrictModelMultipleChoiceField(queryset=Role.objects.none(), required=False, widget=forms.CheckboxSelectMultiple)
    is_active = forms.BooleanField(required=False, initial=True, label="Active (may sign in)")
    disbursement_limit = MoneyFormField(allow_zero=True, initial=0, help_text="Largest total this user may disburse.")

    def __init__(self, *args, entity: Entity, instance: User | None = None, **kwargs):
        if instance is not None:
            initial = model_to_dict(instance, fields=USER_FIELDS)
            initial["roles"] = [r.pk for r in instance.roles.all()]
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.fields["home_branch"].queryset = Branch.objects.filter(entity=entity)
        self.fields["roles"].queryset = Role.objects.filter(entity=entity)
        if instance is None:
            self.fields["password"] = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
            self.fields["password_confirm"] = forms.CharField(strip=False, label="Password again",
                                                              widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self):
        cleaned = super().clean()
        if "password" in self.fields and cleaned.get("password") and cleaned.get("password") != cleaned.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return cleaned

    def service_data(self) -> dict:
        return {name: self.cleaned_data[name] for name in USER_FIELDS}


def _new_password_field(label: str = "New password") -> forms.CharField:
    return forms.CharField(strip=False, label=label, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class PasswordSetForm(forms.Form):
    """An administrator sets another user's password; the service applies the password rules."""

    password = _new_password_field()
    password_confirm = _new_password_field("New password again")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("password") != cleaned.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return cleaned


class PasswordChangeForm(PasswordSetForm):
    """A user changes their own password, proving who they are with the current one."""

    current_password = forms.CharField(strip=False, label="Current password",
                                       widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    field_order = ["current_password", "password", "password_confirm"]


# Rights grouped for the role screen; a right added later and not listed lands in "Other".
RIGHT_GROUPS: list[tuple[str, list[Right]]] = [
    ("Clients and employers", [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.MANAGE_EMPLOYERS,
                               Right.CLEAR_ENROLMENT, Right.CLIENT_MARKETING]),
    ("Loans and receipts", [Right.MANAGE_PRODUCTS, Right.CAPTURE_LOANS, Right.APPROVE_LOANS, Right.DISBURSE_LOANS,
                            Right.OVERRIDE_LOAN_OTP, Right.CAPTURE_RECEIPTS, Right.REVERSE_RECEIPTS]),
    ("SMS and email", [Right.MAXSMS_PROCESSING, Right.SEND_SINGLE_SMS, Right.MAXSMS_GENERAL_SETUP,
                       Right.MAXSMS_ARREARS_SETUP, Right.MAXSMS_REPLIES_SETUP, Right.MAXSMS_MESSAGE_SETUP,
                       Right.MAXMAIL_GENERAL_SETUP, Right.MAXMAIL_MESSAGE_SETUP]),
    ("Reports and logs", [Right.REPORT_SMS_DETAIL, Right.REPORT_MIS_DETAIL, Right.REPORT_REPLY_DETAIL,
                          Right.REPORT_LOGIN_DETAIL, Right.REPORT_CONTRACTS_ISSUED, Right.VIEW_LOGS]),
    ("Security and setups", [Right.MANAGE_USERS, Right.MANAGE_BRANCHES, Right.VIEW_AUDIT,
                             Right.PAYMENT_STREAM_WEB_SERVICES]),
]


def right_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    listed = {r for _, rights in RIGHT_GROUPS for r in rights}
    groups = [(heading, [(r.value, r.label) for r in rights]) for heading, rights in RIGHT_GROUPS]
    rest = [(r.value, r.label) for r in Right if r not in listed]
    if rest:
        groups.append(("Other", rest))
    return groups


class RoleForm(forms.Form):
    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=200, required=False)
    rights = forms.MultipleChoiceField(choices=right_choices, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, entity: Entity, instance: Role | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault("initial", {"name": instance.name, "description": instance.description,
                                          "rights": [p.codename for p in instance.rights.all()]})
        super().__init__(*args, **kwargs)
        if not payment_streams_offered(entity.country):
            # The stream's right opens nothing outside South Africa (tenancy.backends): not offered.
            stream = Right.PAYMENT_STREAM_WEB_SERVICES.value
            self.fields["rights"].choices = [(heading, [(v, label) for v, label in rights if v != stream])
                                             for heading, rights in right_choices()]


BRANCH_FIELDS = ["code", "name", "region", "telephone", "address", "is_active"]


class BranchForm(forms.Form):
    code = forms.CharField(max_length=10)
    name = forms.CharField(max_length=80)
    region = StrictModelChoiceField(queryset=Region.objects.none(), required=False)
    telephone = forms.CharField(max_length=30, required=False, widget=forms.TextInput(attrs={"type": "tel"}))
    address = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args, entity: Entity, instance: Branch | None = None, **kwargs):
        if instance is not None:
            kwargs.setdefault("initial", model_to_dict(instance, fields=BRANCH_FIELDS))
        super().__init__(*args, **kwargs)
        self.fields["region"].queryset = Region.objects.filter(entity=entity)


class RegionForm(forms.Form):
    name = forms.CharField(max_length=80)


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(choices=[("", "All actions"), *AuditAction.choices], required=False)
    date_from = forms.DateField(required=False, label="From", widget=_date_widget())
    date_to = forms.DateField(required=False, label="To", widget=_date_widget())

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "'To' is before 'From'.")
        return cleaned

    def filters(self) -> dict:
        """The audit_entries selector's arguments for what was asked; nothing when the filter is invalid."""
        if not self.is_valid():
            return {}
        return {"action": self.cleaned_data.get("action") or None,
                "since": self.cleaned_data.get("date_from"), "until": self.cleaned_data.get("date_to")}


# --- Operator -------------------------------------------------------------------------------------


def time_zone_choices(blank_label: str | None = None) -> list[tuple[str, str]]:
    zones = sorted(z for z in zoneinfo.available_timezones() if z.startswith("Africa/")) + ["UTC"]
    choices = [(z, z) for z in zones]
    return [("", blank_label), *choices] if blank_label else choices


ENTITY_FIELDS = ["name", "code", "country", "time_zone", "modules", "registration_number", "ncr_number",
                 "marketing_consent_not_required"]


class EntityFieldsMixin(forms.Form):
    name = forms.CharField(max_length=120)
    modules = forms.MultipleChoiceField(choices=Module.choices, required=False, widget=forms.CheckboxSelectMultiple,
                                        help_text="Payment streams and collections (DebiCheck, NAEDO) are for lenders in "
                                                  "South Africa only.")
    registration_number = forms.CharField(max_length=40, required=False)
    ncr_number = forms.CharField(max_length=40, required=False, label="NCR registration number")
    marketing_consent_not_required = forms.BooleanField(
        required=False, help_text="When on, client marketing ignores each client's consent flag.")


class EntityOnboardForm(FieldsetsMixin, EntityFieldsMixin):
    FIELDSETS = [
        ("Lender", ["name", "code", "country", "time_zone", "registration_number", "ncr_number", "modules",
                    "marketing_consent_not_required"]),
        ("First administrator", ["admin_username", "admin_first_name", "admin_last_name", "admin_email",
                                 "admin_cellphone", "admin_password", "admin_password_confirm"]),
        ("Head office branch (optional)", ["branch_code", "branch_name"]),
    ]
    # Service error keys for the administrator, mapped onto this form's field names.
    ADMIN_FIELD_MAP = {"username": "admin_username", "first_name": "admin_first_name", "last_name": "admin_last_name",
                       "email": "admin_email", "cellphone": "admin_cellphone", "home_branch": "branch_code"}

    code = forms.SlugField(max_length=30, help_text="Short name used in links and reports, e.g. 'acme'.")
    country = forms.ChoiceField(choices=Country.choices)
    time_zone = forms.ChoiceField(required=False)
    admin_username = forms.CharField(max_length=150, label="Username")
    admin_first_name = forms.CharField(max_length=150, label="First name")
    admin_last_name = forms.CharField(max_length=150, label="Last name")
    admin_email = forms.EmailField(required=False, label="Email")
    admin_cellphone = forms.CharField(max_length=30, label="Cellphone", widget=forms.TextInput(attrs={"type": "tel"}))
    admin_password = forms.CharField(strip=False, label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    admin_password_confirm = forms.CharField(strip=False, label="Password again",
                                             widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    branch_code = forms.CharField(max_length=10, required=False, label="Branch code")
    branch_name = forms.CharField(max_length=80, required=False, label="Branch name", initial="Head office")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices("The country's time zone")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("admin_password") and cleaned.get("admin_password") != cleaned.get("admin_password_confirm"):
            self.add_error("admin_password_confirm", "The two passwords differ.")
        return cleaned

    def entity_data(self) -> dict:
        data = {name: self.cleaned_data[name] for name in ENTITY_FIELDS}
        if not data["time_zone"]:
            del data["time_zone"]
        return data

    def admin_data(self) -> dict:
        admin = {field: self.cleaned_data[form_field] for field, form_field in self.ADMIN_FIELD_MAP.items()
                 if field != "home_branch"}
        if self.cleaned_data.get("branch_code"):
            admin["branch_code"] = self.cleaned_data["branch_code"]
            admin["branch_name"] = self.cleaned_data.get("branch_name") or "Head office"
        return admin


ENTITY_EDIT_FIELDS = ["name", "time_zone", "modules", "registration_number", "ncr_number", "is_active",
                      "marketing_consent_not_required"]


class EntityEditForm(EntityFieldsMixin):
    time_zone = forms.ChoiceField()
    is_active = forms.BooleanField(required=False, label="Active (its users may sign in)")

    def __init__(self, *args, instance: Entity, **kwargs):
        kwargs.setdefault("initial", model_to_dict(instance, fields=ENTITY_EDIT_FIELDS))
        super().__init__(*args, **kwargs)
        self.instance = instance
        choices = time_zone_choices()
        if instance.time_zone not in dict(choices):
            choices.insert(0, (instance.time_zone, instance.time_zone))
        self.fields["time_zone"].choices = choices
        # Only the modules the lender's country offers: an older row's payment stream outside South
        # Africa is not shown, so the next save drops it.
        self.fields["modules"].choices = [(m, label) for m, label in Module.choices if Module(m).offered_in(instance.country)]
        self.fields["modules"].help_text = ""
        self.order_fields(ENTITY_EDIT_FIELDS)

    def clean_name(self):
        # The database would refuse a duplicate name with an IntegrityError; say it here instead.
        name = self.cleaned_data["name"].strip()
        if Entity.objects.filter(name__iexact=name).exclude(pk=self.instance.pk).exists():
            raise ValidationError("An entity with this name exists already.", code="duplicate")
        return name

    def service_data(self) -> dict:
        return {name: self.cleaned_data[name] for name in ENTITY_EDIT_FIELDS}


# --- The operator's SMS gateways --------------------------------------------------------------------


class GatewayForm(FieldsetsMixin, forms.Form):
    """An SMS gateway's settings. The SMPP password and the API key are write-only: the page never
    carries them back, and an empty field leaves the stored one unchanged. The name is set once
    (messages and receipts carry it). A plain form built from the model's fields (as ClientForm is):
    it only parses, and the service holds every rule and names the field it refuses."""

    FIELDSETS = [
        ("Gateway", ["name", "kind", "is_active"]),
        ("SMPP (an SMSC)", ["host", "port", "system_id", "password", "bind_mode", "receipt_id_format"]),
        ("HTTP aggregator", ["base_url", "api_key", "account"]),
        ("Addresses", ["source_addr", "source_addr_ton", "source_addr_npi", "dest_addr_ton", "dest_addr_npi"]),
        ("Throughput", ["window", "rate_per_second"]),
    ]
    LABELS = {"name": "Name (letters, digits, - and _; set once)", "kind": "Kind", "host": "SMSC host",
              "port": "SMSC port", "system_id": "SMPP system id", "account": "Account (Africa's Talking username)",
              "source_addr": "Sender address", "source_addr_ton": "Sender type of number (empty: from the sender)",
              "source_addr_npi": "Sender numbering plan (empty: from the sender)",
              "dest_addr_ton": "Recipient type of number", "dest_addr_npi": "Recipient numbering plan",
              "bind_mode": "Bind mode", "receipt_id_format": "Receipt ids", "window": "Window (messages in flight)",
              "rate_per_second": "Rate (messages a second)", "is_active": "Active (the dispatchers use it)"}
    SECRETS = {"password": "password", "api_key": "API key"}

    def __init__(self, *args, instance=None, **kwargs):
        from imali.messaging.gateways import GATEWAY_FIELDS
        from imali.messaging.models import Gateway

        model_fields = [f for f in GATEWAY_FIELDS if f not in ("password", "base_url", "api_key")]
        if instance is not None:
            kwargs.setdefault("initial", model_to_dict(instance, fields=[f for f in GATEWAY_FIELDS if f not in self.SECRETS]))
        super().__init__(*args, **kwargs)
        self.fields.update(fields_for_model(Gateway, fields=model_fields, labels=self.LABELS,
                                             formfield_callback=strict_formfield))
        self.fields["password"] = forms.CharField(
            required=False, strip=False, max_length=9, label="SMPP password",
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        self.fields["base_url"] = forms.URLField(required=False, max_length=200, assume_scheme="https", label="Base URL")
        self.fields["api_key"] = forms.CharField(
            required=False, strip=False, max_length=200, label="API key",
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        self.order_fields(GATEWAY_FIELDS)
        if instance is not None:
            del self.fields["name"]
            for field, what in self.SECRETS.items():
                if getattr(instance, field):
                    self.fields[field].help_text = f"A {what} is stored; leave this empty to keep it."
        # The service validates everything (with the rules that depend on the kind), so an HTTP
        # gateway need not fill the SMPP fields and the reverse.
        for field in self.fields.values():
            if not isinstance(field, forms.BooleanField):
                field.required = False

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        for field in ("host", "system_id", "base_url", "account", "source_addr", "kind", "bind_mode", "receipt_id_format"):
            if data.get(field) is None:
                data[field] = ""
        for field in ("port", "window", "rate_per_second", "dest_addr_ton", "dest_addr_npi"):
            if data.get(field) is None:
                data[field] = 0 if field in ("port", "window", "rate_per_second") else None
        return data


class RouteForm(forms.Form):
    entity = StrictModelChoiceField(queryset=Entity.objects.none(), required=False, empty_label="Every lender",
                                    label="Lender")
    country = forms.ChoiceField(required=False, choices=[("", "Every country"), *Country.choices], label="Country")
    rank = StrictIntegerFormField(min_value=0, max_value=1000, initial=0, label="Rank (lower is tried first)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].queryset = Entity.objects.filter(is_active=True).order_by("name")
