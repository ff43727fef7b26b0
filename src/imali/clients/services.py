"""Every write to clients and employers: validated, in one transaction, audited."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from imali.core.audit import apply_changes, audit_record, snapshot
from imali.core.models import AuditAction, AuditEntry
from imali.core.phones import parse_phone
from imali.tenancy.models import Entity

from .models import AccountKind, Client, ClientAccount, ClientNote, Employer, Paypoint
from .validation import ADDRESS_MAX_LENGTH, clean_client_fields, text_too_long

CLIENT_EDITABLE_FIELDS = frozenset(
    f.name
    for f in Client._meta.concrete_fields
    if f.name not in {"id", "entity", "number", "created_by", "created_at", "updated_at"}
)


def _check_same_entity(entity: Entity, data: dict[str, Any]) -> None:
    """References a client holds must all be of the client's own entity."""
    errors = {}
    for field in ("branch", "employer", "salesperson"):
        obj = data.get(field)
        if obj is not None and getattr(obj, "entity_id", None) != entity.pk:
            errors[field] = [ValidationError("Choose one of your own entity's records.", code="other_entity")]
    paypoint = data.get("paypoint")
    if paypoint is not None:
        employer = data.get("employer")
        if employer is None or paypoint.employer_id != employer.pk:
            errors["paypoint"] = [ValidationError("The paypoint must belong to the chosen employer.", code="paypoint_employer")]
    if data.get("branch") is None:
        errors.setdefault("branch", []).append(ValidationError("This field is required.", code="required"))
    if errors:
        raise ValidationError(errors)


def _unknown_fields(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - CLIENT_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({unknown[0]: [ValidationError(f"'{unknown[0]}' is not a client field.", code="unknown_field")]})


def client_create(*, entity: Entity, actor, data: dict[str, Any], ip_address: str | None = None) -> Client:
    _unknown_fields(data)
    cleaned = clean_client_fields(data, country=entity.country)
    _check_same_entity(entity, cleaned)
    with transaction.atomic():
        # The entity row lock hands out client numbers one at a time, gap-free under concurrency.
        locked = Entity.objects.select_for_update().only("id", "next_client_number").get(pk=entity.pk)
        number = locked.next_client_number
        Entity.objects.filter(pk=entity.pk).update(next_client_number=number + 1)
        client = Client.objects.create(entity=entity, number=number, created_by=actor, **cleaned)
        audit_record(
            action=AuditAction.CLIENT_CREATED, actor=actor, entity=entity, target=client,
            subject=str(number), after=snapshot(client), ip_address=ip_address,
        )
        if client.marketing_consent:
            audit_record(
                action=AuditAction.CLIENT_CONSENT_CHANGED, actor=actor, entity=entity, target=client,
                subject=str(number), before={"marketing_consent": None}, after={"marketing_consent": True},
                ip_address=ip_address,
            )
    return client


def client_update(*, client: Client, actor, data: dict[str, Any], ip_address: str | None = None) -> Client:
    _unknown_fields(data)
    entity = client.entity
    current = {name: getattr(client, name) for name in CLIENT_EDITABLE_FIELDS}
    cleaned = clean_client_fields({**current, **data}, country=entity.country)
    _check_same_entity(entity, cleaned)
    with transaction.atomic():
        locked = Client.objects.select_for_update().get(pk=client.pk, entity=entity)
        changed_before, changed_after = apply_changes(locked, cleaned, exclude=("updated_at",))
        consent_before = changed_before.pop("marketing_consent", None)
        consent_after = changed_after.pop("marketing_consent", None)
        if changed_after:
            audit_record(
                action=AuditAction.CLIENT_UPDATED, actor=actor, entity=entity, target=locked,
                subject=str(locked.number), before=changed_before, after=changed_after, ip_address=ip_address,
            )
        if consent_after is not None or consent_before is not None:
            audit_record(
                action=AuditAction.CLIENT_CONSENT_CHANGED, actor=actor, entity=entity, target=locked,
                subject=str(locked.number), before={"marketing_consent": consent_before},
                after={"marketing_consent": consent_after}, ip_address=ip_address,
            )
    return locked


def client_account_add(*, client: Client, actor, data: dict[str, Any]) -> ClientAccount:
    errors: dict[str, list[ValidationError]] = {}
    kind = data.get("kind")
    if kind == AccountKind.BANK:
        for field in ("bank_name", "branch_code", "account_number", "account_type"):
            if not data.get(field):
                errors.setdefault(field, []).append(ValidationError("This field is required for a bank account.", code="required"))
        for field, length in (("branch_code", 6), ("account_number", 20)):
            value = str(data.get(field) or "")
            if value and (not value.isdigit() or len(value) > length or (field == "branch_code" and len(value) != 6)):
                errors.setdefault(field, []).append(
                    ValidationError(f"Must be digits only ({'6' if field == 'branch_code' else 'up to 20'}).", code="invalid")
                )
    elif kind == AccountKind.WALLET:
        if not data.get("wallet_provider"):
            errors["wallet_provider"] = [ValidationError("This field is required for a wallet.", code="required")]
        if data.get("wallet_number"):
            try:
                data = {**data, "wallet_number": parse_phone(data["wallet_number"], country=client.entity.country, field="wallet_number", mobile=True)}
            except ValidationError as exc:
                errors.update(exc.error_dict)
        else:
            errors["wallet_number"] = [ValidationError("This field is required for a wallet.", code="required")]
    else:
        errors["kind"] = [ValidationError("Choose bank account or wallet.", code="invalid_choice")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        account = ClientAccount.objects.create(client=client, **data)
        audit_record(
            action=AuditAction.CLIENT_ACCOUNT_ADDED, actor=actor, entity=client.entity, target=account,
            subject=str(client.number), after=snapshot(account),
        )
    return account


def client_note_add(*, client: Client, actor, text: str, is_display_note: bool = False) -> ClientNote:
    if not (text or "").strip():
        raise ValidationError({"text": [ValidationError("A note needs some text.", code="required")]})
    with transaction.atomic():
        note = ClientNote.objects.create(client=client, text=text.strip(), is_display_note=is_display_note, created_by=actor)
        audit_record(action=AuditAction.CLIENT_NOTE_ADDED, actor=actor, entity=client.entity, target=note, subject=str(client.number))
    return note


def _clean_employer(entity: Entity, data: dict[str, Any], *, instance: Employer | None = None) -> dict[str, Any]:
    """Every bad field at once, the name's uniqueness within the entity among them."""
    cleaned = dict(data)
    errors: dict[str, list[ValidationError]] = {}
    if not (cleaned.get("name") or "").strip():
        errors["name"] = [ValidationError("This field is required.", code="required")]
    else:
        cleaned["name"] = " ".join(cleaned["name"].split())
        taken = Employer.objects.filter(entity=entity, name__iexact=cleaned["name"])
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["name"] = [ValidationError("An employer with this name exists already.", code="duplicate")]
    for field in ("classification", "economic_sector"):
        if not cleaned.get(field):
            errors[field] = [ValidationError("This field is required.", code="required")]
    if cleaned.get("telephone"):
        try:
            cleaned["telephone"] = parse_phone(cleaned["telephone"], country=entity.country, field="telephone")
        except ValidationError as exc:
            errors.update(exc.error_dict)
    text_too_long(errors, cleaned, {"address": ADDRESS_MAX_LENGTH})
    if errors:
        raise ValidationError(errors)
    return cleaned


def employer_create(*, entity: Entity, actor, data: dict[str, Any]) -> Employer:
    cleaned = _clean_employer(entity, data)
    try:
        with transaction.atomic():
            employer = Employer.objects.create(entity=entity, **cleaned)
            audit_record(action=AuditAction.EMPLOYER_CREATED, actor=actor, entity=entity, target=employer, subject=employer.name, after=snapshot(employer))
    except IntegrityError:
        # Another request created the same name between our check and our insert.
        raise ValidationError({"name": [ValidationError("An employer with this name exists already.", code="duplicate")]}) from None
    return employer


def employer_update(*, employer: Employer, actor, data: dict[str, Any]) -> Employer:
    cleaned = _clean_employer(employer.entity, data, instance=employer)
    try:
        with transaction.atomic():
            locked = Employer.objects.select_for_update().get(pk=employer.pk)
            b, a = apply_changes(locked, cleaned)
            if a:
                audit_record(action=AuditAction.EMPLOYER_UPDATED, actor=actor, entity=locked.entity, target=locked, subject=locked.name, before=b, after=a)
    except IntegrityError:
        raise ValidationError({"name": [ValidationError("An employer with this name exists already.", code="duplicate")]}) from None
    return locked


_PAYPOINT_DUPLICATE = "This employer has a paypoint with this number already."


def _clean_paypoint(employer: Employer, *, number: str, name: str, address: str = "",
                    instance: Paypoint | None = None) -> None:
    errors = {}
    text_too_long(errors, {"address": address}, {"address": ADDRESS_MAX_LENGTH})
    if not (number or "").strip():
        errors["number"] = [ValidationError("This field is required.", code="required")]
    else:
        taken = Paypoint.objects.filter(employer=employer, number=number.strip())
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            errors["number"] = [ValidationError(_PAYPOINT_DUPLICATE, code="duplicate")]
    if not (name or "").strip():
        errors["name"] = [ValidationError("This field is required.", code="required")]
    if errors:
        raise ValidationError(errors)


def paypoint_create(*, employer: Employer, actor, number: str, name: str, address: str = "") -> Paypoint:
    _clean_paypoint(employer, number=number, name=name, address=address)
    with transaction.atomic():
        paypoint = Paypoint.objects.create(employer=employer, number=number.strip(), name=name.strip(), address=address)
        audit_record(action=AuditAction.PAYPOINT_CREATED, actor=actor, entity=employer.entity, target=paypoint, subject=paypoint.number)
    return paypoint


def paypoint_update(*, paypoint: Paypoint, actor, number: str, name: str, address: str = "") -> Paypoint:
    """Renumber, rename or re-address a paypoint; numbers are unique within the employer."""
    employer = paypoint.employer
    _clean_paypoint(employer, number=number, name=name, address=address, instance=paypoint)
    try:
        with transaction.atomic():
            locked = Paypoint.objects.select_for_update().get(pk=paypoint.pk)
            b, a = apply_changes(locked, {"number": number.strip(), "name": name.strip(), "address": address or ""})
            if a:
                audit_record(action=AuditAction.PAYPOINT_UPDATED, actor=actor, entity=employer.entity, target=locked,
                             subject=locked.number, before=b, after=a)
    except IntegrityError:
        # Another request took the number between our check and our write.
        raise ValidationError({"number": [ValidationError(_PAYPOINT_DUPLICATE, code="duplicate")]}) from None
    return locked


STATUS_BATCH = 5000


def client_status_apply(
    *, clients: QuerySet[Client], status: str, actor=None, new_loans_allowed: bool | None = None, rule: str,
    batch_size: int = STATUS_BATCH,
) -> int:
    """Move every client of `clients` to `status` (and set New Loans Allowed when given) by one of
    the book's rules (daily close, write-off, hand-over, disbursement), set-based: one read of the
    clients' current values, one UPDATE, one bulk insert of audit entries, one per client whose
    values change, so the client's history says what moved it and why. Returns how many changed."""
    changes: dict[str, Any] = {"status": status}
    if new_loans_allowed is not None:
        changes["new_loans_allowed"] = new_loans_allowed
    with transaction.atomic():
        # Locked as read, so a person's edit in between is not overwritten without a trace.
        rows = list(clients.select_for_update().values_list("pk", "entity_id", "number", "status", "new_loans_allowed"))
        moved = [row for row in rows if row[3] != status or (new_loans_allowed is not None and row[4] != new_loans_allowed)]
        if not moved:
            return 0
        ids = [row[0] for row in moved]
        # In slices: a first close of a large book may move many clients, and SQLite limits the
        # number of values one statement may carry.
        for start in range(0, len(ids), batch_size):
            Client.objects.filter(pk__in=ids[start:start + batch_size]).update(**changes)
        label = Client._meta.label
        actor = actor if getattr(actor, "pk", None) else None
        AuditEntry.objects.bulk_create([
            AuditEntry(
                action=AuditAction.CLIENT_UPDATED, actor=actor, entity_id=entity_id, object_type=label,
                object_id=str(pk), subject=str(number)[:150],
                before={k: v for k, v in (("status", old_status), ("new_loans_allowed", old_allowed)) if k in changes},
                after={**changes, "rule": rule},
            )
            for pk, entity_id, number, old_status, old_allowed in moved
        ], batch_size=batch_size)
    return len(moved)
