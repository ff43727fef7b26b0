"""Employers with paypoints; clients (borrowers) with their accounts and notes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower, Upper

from imali.core.idnumbers import Gender, IdType


class EmployerClassification(models.TextChoices):
    GOVERNMENT = "government", "Government"
    PARASTATAL = "parastatal", "Parastatal"
    PRIVATE = "private", "Private sector"
    MINING = "mining", "Mining"
    INFORMAL = "informal", "Informal / self-employed"
    SOCIAL_GRANT = "social_grant", "Social grant"
    PENSION = "pension", "Pension fund"


class EconomicSector(models.TextChoices):
    AGRICULTURE = "agriculture", "Agriculture, forestry and fishing"
    MINING = "mining", "Mining and quarrying"
    MANUFACTURING = "manufacturing", "Manufacturing"
    UTILITIES = "utilities", "Electricity, gas and water"
    CONSTRUCTION = "construction", "Construction"
    TRADE = "trade", "Wholesale and retail trade"
    TRANSPORT = "transport", "Transport and communication"
    FINANCE = "finance", "Finance and business services"
    GOVERNMENT = "government", "General government services"
    COMMUNITY = "community", "Community, social and personal services"
    HOUSEHOLDS = "households", "Private households"


class Employer(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="employers")
    name = models.CharField(max_length=120)
    classification = models.CharField(max_length=20, choices=EmployerClassification.choices)
    economic_sector = models.CharField(max_length=20, choices=EconomicSector.choices)
    telephone = models.CharField(max_length=16, blank=True)
    address = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        # Case-insensitive, as the services check it: "ACME" and "Acme" are one employer.
        constraints = [models.UniqueConstraint(Lower("name"), "entity", name="employer_name_per_entity_ci")]

    def __str__(self) -> str:
        return self.name


class Paypoint(models.Model):
    employer = models.ForeignKey(Employer, on_delete=models.CASCADE, related_name="paypoints")
    number = models.CharField(max_length=20)
    name = models.CharField(max_length=120)
    address = models.TextField(blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["employer", "number"], name="paypoint_number_per_employer")]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class Title(models.TextChoices):
    MR = "Mr", "Mr"
    MRS = "Mrs", "Mrs"
    MS = "Ms", "Ms"
    MISS = "Miss", "Miss"
    DR = "Dr", "Dr"
    PROF = "Prof", "Prof"
    REV = "Rev", "Rev"


class ClientStatus(models.TextChoices):
    GOOD = "good", "Good"
    BAD = "bad", "Bad"
    INACTIVE = "inactive", "Inactive"
    BLACKLISTED = "blacklisted", "Blacklisted"
    DECEASED = "deceased", "Deceased"
    DEBT_REVIEW = "debt_review", "Under debt review"
    HANDED_OVER = "handed_over", "Handed over"


# Clients no message about their account or debt goes to (automatic SMS and manual batches alike):
# the dead, and those whose debt is with a debt counsellor or a collector (NCA s86(9)/s88: the
# lender may not approach them about it directly).
NO_ACCOUNT_NOTICES = (ClientStatus.DECEASED, ClientStatus.DEBT_REVIEW, ClientStatus.HANDED_OVER)


class PaymentFrequency(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    FORTNIGHTLY = "fortnightly", "Fortnightly"
    WEEKLY = "weekly", "Weekly"


class PaymentMoveDirection(models.TextChoices):
    BEFORE = "before", "Move to the business day before"
    AFTER = "after", "Move to the business day after"


class AppointmentType(models.TextChoices):
    PERMANENT = "permanent", "Permanent"
    CONTRACT = "contract", "Contract"
    TEMPORARY = "temporary", "Temporary"
    SELF_EMPLOYED = "self_employed", "Self-employed"
    PENSIONER = "pensioner", "Pensioner"


def payback_type_choices():
    """The payback (receipt) types of the loan book, one list for receipts and clients."""
    from imali.loans.models import PaybackType

    return PaybackType.choices


class Client(models.Model):
    entity = models.ForeignKey("tenancy.Entity", on_delete=models.PROTECT, related_name="clients")
    branch = models.ForeignKey("tenancy.Branch", on_delete=models.PROTECT, related_name="clients")
    number = models.PositiveBigIntegerField(help_text="Client number, sequential per entity")
    # Identity
    title = models.CharField(max_length=5, choices=Title.choices, blank=True)
    initials = models.CharField(max_length=10, blank=True)
    full_names = models.CharField(max_length=120, help_text="All first names")
    name = models.CharField(max_length=60, help_text="The name the client goes by")
    surname = models.CharField(max_length=80)
    id_number = models.CharField(max_length=20)
    id_type = models.CharField(max_length=12, choices=IdType.choices)
    gender = models.CharField(max_length=1, choices=Gender.choices)
    date_of_birth = models.DateField()
    # Contact
    cellphone = models.CharField(max_length=16, blank=True, db_index=True)
    home_phone = models.CharField(max_length=16, blank=True)
    work_phone = models.CharField(max_length=16, blank=True)
    email = models.EmailField(blank=True)
    physical_address = models.TextField(blank=True)
    postal_address = models.TextField(blank=True)
    area = models.CharField(max_length=60, blank=True)
    # Administration
    tax_number = models.CharField(max_length=20, blank=True)
    original_client_number = models.CharField(max_length=30, blank=True)
    status = models.CharField(max_length=12, choices=ClientStatus.choices, default=ClientStatus.GOOD)
    new_loans_allowed = models.BooleanField(default=True)
    salesperson = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    marketing_consent = models.BooleanField(default=False)
    # What the lender knows of the client for marketing (the seed's "Marketing info"): how they
    # came to the lender, what they asked about. Free text.
    marketing_info = models.CharField(max_length=200, blank=True, default="", db_default="")
    insolvent = models.BooleanField(default=False)
    garnishee = models.BooleanField(default=False)
    historically_disadvantaged = models.BooleanField(default=False)
    # Income and payment
    salary = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    bonus_month = models.PositiveSmallIntegerField(null=True, blank=True)
    payment_frequency = models.CharField(
        max_length=12, choices=PaymentFrequency.choices, default=PaymentFrequency.MONTHLY
    )
    payment_day = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Day of month (1–31) or, weekly/fortnightly, day of week (1=Mon–7)"
    )
    payment_move_direction = models.CharField(
        max_length=6, choices=PaymentMoveDirection.choices, default=PaymentMoveDirection.BEFORE
    )
    credit_limit = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    # How the client pays back (cash, debit order, ...): the receipt type marketing filters by.
    payback_type = models.CharField(max_length=16, choices=payback_type_choices, blank=True, default="", db_default="")
    # The affordability figures: what the client detail says is free for an instalment, and what the
    # latest budget (income less expenses) left for one.
    available_for_instalment = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    budget_available_for_instalment = models.DecimalField(
        "available for instalment (latest budget)", max_digits=14, decimal_places=2, null=True, blank=True)
    # Employment
    employer = models.ForeignKey(Employer, null=True, blank=True, on_delete=models.PROTECT, related_name="clients")
    paypoint = models.ForeignKey(Paypoint, null=True, blank=True, on_delete=models.PROTECT, related_name="clients")
    employee_number = models.CharField(max_length=30, blank=True)
    occupation = models.CharField(max_length=60, blank=True)
    appointment_type = models.CharField(max_length=14, choices=AppointmentType.choices, blank=True)
    commencement_of_service = models.DateField(null=True, blank=True)
    contract_expiry_date = models.DateField(null=True, blank=True)
    other_employer_reference = models.CharField(max_length=40, blank=True)
    notes = models.TextField(blank=True)
    # Book-keeping
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["entity", "number"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "number"], name="client_number_per_entity"),
        ]
        indexes = [
            models.Index(fields=["entity", "id_number"], name="client_entity_idno"),
            models.Index(fields=["entity", "cellphone"], name="client_entity_cell"),
            models.Index(Upper("surname"), "entity", name="client_entity_surname_ci"),
            models.Index(fields=["entity", "branch"], name="client_entity_branch"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name} {self.surname}"

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.title, self.name, self.surname) if p)


class AccountKind(models.TextChoices):
    BANK = "bank", "Bank account"
    WALLET = "wallet", "Wallet"


class BankAccountType(models.TextChoices):
    CHEQUE = "cheque", "Cheque / current"
    SAVINGS = "savings", "Savings"
    TRANSMISSION = "transmission", "Transmission"


class AccountPurpose(models.TextChoices):
    PAYOUT = "payout", "Payout (loan paid into it)"
    PAYBACK = "payback", "Payback (instalments collected from it)"
    BOTH = "both", "Payout and payback"


class ClientAccount(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="accounts")
    kind = models.CharField(max_length=6, choices=AccountKind.choices)
    purpose = models.CharField(max_length=7, choices=AccountPurpose.choices, default=AccountPurpose.BOTH)
    bank_name = models.CharField(max_length=60, blank=True)
    branch_code = models.CharField(max_length=6, blank=True)
    account_number = models.CharField(max_length=20, blank=True)
    account_type = models.CharField(max_length=12, choices=BankAccountType.choices, blank=True)
    wallet_provider = models.CharField(max_length=40, blank=True)
    wallet_number = models.CharField(max_length=20, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_active", "id"]

    def __str__(self) -> str:
        if self.kind == AccountKind.WALLET:
            return f"{self.wallet_provider} wallet {self.wallet_number}"
        return f"{self.bank_name} {self.account_type} …{self.account_number[-4:]}"


class ClientNote(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="client_notes")
    text = models.TextField()
    is_display_note = models.BooleanField(default=False, help_text="Shown on opening the client")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.text[:60]
