"""Operator, entities (lenders), regions, branches, users and roles."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, Permission
from django.db import models

from imali.core.countries import Country, payment_streams_offered

from .rights import Right


class Module(models.TextChoices):
    MAXSMS = "maxsms", "MAXSMS (SMS)"
    MAXMAIL = "maxmail", "MAXMAIL (email)"
    LOAN_OTP = "loan_otp", "Loan OTP and e-signing"
    CLIENT_MARKETING = "client_marketing", "Client marketing"
    PAYMENT_STREAMS = "payment_streams", "Payment streams and collections"
    MOBILE_MONEY = "mobile_money", "Mobile money"
    SMS_BANKING = "sms_banking", "SMS banking"

    def offered_in(self, country: str) -> bool:
        """Whether a lender in `country` may have this module (the payment stream is South Africa's)."""
        return self != Module.PAYMENT_STREAMS or payment_streams_offered(country)


class Entity(models.Model):
    """A lender ("legal entity"). Every row of lender data belongs to exactly one."""

    name = models.CharField(max_length=120, unique=True)
    code = models.SlugField(max_length=30, unique=True)
    country = models.CharField(max_length=2, choices=Country.choices)
    currency = models.CharField(max_length=3, editable=False)
    time_zone = models.CharField(max_length=64)
    modules = models.JSONField(default=list, blank=True)
    registration_number = models.CharField(max_length=40, blank=True)
    ncr_number = models.CharField("NCR registration number", max_length=40, blank=True)
    marketing_consent_not_required = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # The next client number to hand out; incremented under a row lock.
    next_client_number = models.PositiveBigIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "entities"

    def __str__(self) -> str:
        return self.name

    def has_module(self, module: Module) -> bool:
        # A module its country does not offer is off even if an older row lists it.
        return module in self.modules and Module(module).offered_in(self.country)


class Region(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="regions")
    name = models.CharField(max_length=80)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["entity", "name"], name="region_name_per_entity")]

    def __str__(self) -> str:
        return self.name


class Branch(models.Model):
    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="branches")
    region = models.ForeignKey(Region, null=True, blank=True, on_delete=models.SET_NULL, related_name="branches")
    code = models.CharField(max_length=10)
    name = models.CharField(max_length=80)
    telephone = models.CharField(max_length=16, blank=True)
    address = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "branches"
        constraints = [models.UniqueConstraint(fields=["entity", "code"], name="branch_code_per_entity")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Role(models.Model):
    """A named set of rights inside one entity."""

    entity = models.ForeignKey(Entity, on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=200, blank=True)
    rights = models.ManyToManyField(Permission, blank=True, related_name="roles")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["entity", "name"], name="role_name_per_entity")]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A lender's staff member (entity set) or a platform operator (entity empty, is_operator)."""

    entity = models.ForeignKey(Entity, null=True, blank=True, on_delete=models.PROTECT, related_name="users")
    home_branch = models.ForeignKey(Branch, null=True, blank=True, on_delete=models.PROTECT, related_name="users")
    cellphone = models.CharField(max_length=16, blank=True)
    is_operator = models.BooleanField(default=False)
    roles = models.ManyToManyField(Role, blank=True, related_name="users")
    disbursement_limit = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        ordering = ["username"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(is_operator=True, entity__isnull=True) | models.Q(is_operator=False, entity__isnull=False))
                | models.Q(is_superuser=True),
                name="user_operator_xor_entity",
            )
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def has_right(self, right: Right) -> bool:
        return self.has_perm(f"tenancy.{right.value}")


class RightHolder(models.Model):
    """Holds the named rights as Django permissions; it has no table of its own."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [(r.value, r.label) for r in Right]
        verbose_name = "right"

    def __str__(self) -> str:
        return self._meta.verbose_name
