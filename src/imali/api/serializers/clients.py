"""Serializers of clients, employers and paypoints. They check the shape of the data only; the
business rules (IDs, phones, ages, same-entity references) live in imali.clients.services."""

from __future__ import annotations

from rest_framework import serializers

from imali.clients.models import Client, Employer, Paypoint
from imali.clients.services import CLIENT_EDITABLE_FIELDS
from imali.tenancy.models import Branch, User

from .fields import EntityRelatedField, MoneyShapeField

# Raw phone input may carry spaces, brackets and dashes; the service stores E.164.
RAW_PHONE_MAX_LENGTH = 30


def _phone_field() -> serializers.CharField:
    return serializers.CharField(max_length=RAW_PHONE_MAX_LENGTH, required=False, allow_blank=True)


class PaypointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Paypoint
        fields = ["id", "employer", "number", "name", "address"]
        read_only_fields = fields


class PaypointWriteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Paypoint
        fields = ["number", "name", "address"]
        extra_kwargs = {"address": {"required": False}}


class EmployerSerializer(serializers.ModelSerializer):
    paypoints = PaypointSerializer(many=True, read_only=True)

    class Meta:
        model = Employer
        fields = ["id", "name", "classification", "economic_sector", "telephone", "address", "created_at", "paypoints"]
        read_only_fields = fields


class EmployerWriteSerializer(serializers.ModelSerializer):
    telephone = _phone_field()

    class Meta:
        model = Employer
        fields = ["name", "classification", "economic_sector", "telephone", "address"]
        extra_kwargs = {"address": {"required": False}}


class ClientSerializer(serializers.ModelSerializer):
    """A client as stored, with its client number. References are ids."""

    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = Client
        exclude = ["entity"]
        read_only_fields = [f.name for f in Client._meta.concrete_fields if f.name != "entity"]


class ClientWriteSerializer(serializers.ModelSerializer):
    """The editable client fields. `name` and `initials` are derived from `full_names` when empty."""

    branch = EntityRelatedField(queryset=Branch.objects.all())
    employer = EntityRelatedField(queryset=Employer.objects.all(), required=False, allow_null=True)
    paypoint = EntityRelatedField(
        queryset=Paypoint.objects.all(), required=False, allow_null=True,
        scope=lambda queryset, entity: queryset.filter(employer__entity=entity),
    )
    salesperson = EntityRelatedField(queryset=User.objects.all(), required=False, allow_null=True)
    cellphone = _phone_field()
    home_phone = _phone_field()
    work_phone = _phone_field()
    # Signs are the clients service's (core.money), so a negative one comes with the cross-field errors.
    salary = MoneyShapeField(allow_zero=True, required=False, allow_null=True)
    credit_limit = MoneyShapeField(allow_zero=True, required=False, allow_null=True)
    available_for_instalment = MoneyShapeField(allow_zero=True, required=False, allow_null=True)
    budget_available_for_instalment = MoneyShapeField(allow_zero=True, required=False, allow_null=True)

    class Meta:
        model = Client
        fields = sorted(CLIENT_EDITABLE_FIELDS)
        extra_kwargs = {
            "name": {"required": False, "allow_blank": True},
            "initials": {"required": False, "allow_blank": True},
        }
