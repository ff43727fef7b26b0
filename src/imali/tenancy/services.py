"""Writes to tenancy: entities (operators only), regions, branches, users, roles. All audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from imali.core.audit import apply_changes, audit_record, snapshot
from imali.core.countries import COUNTRY_FACTS, country_name
from imali.core.models import AuditAction, AuditEntry
from imali.core.money import parse_amount
from imali.core.phones import parse_phone

from .models import Branch, Entity, Module, Region, Role, User
from .rights import Right

# The roles a new entity starts with; its administrator changes them from there.
DEFAULT_ROLES: dict[str, tuple[str, list[str]]] = {
    "Administrator": ("Every right of the entity", list(Right.values)),
    "Branch manager": (
        "Runs a branch: clients, loans, approvals, reports",
        [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.MANAGE_EMPLOYERS, Right.APPROVE_LOANS,
         Right.CAPTURE_LOANS, Right.DISBURSE_LOANS, Right.CAPTURE_RECEIPTS, Right.REVERSE_RECEIPTS,
         Right.SEND_SINGLE_SMS, Right.REPORT_SMS_DETAIL, Right.REPORT_CONTRACTS_ISSUED,
         Right.OVERRIDE_LOAN_OTP, Right.CLEAR_ENROLMENT, Right.VIEW_LOGS],
    ),
    "Loan officer": (
        "Captures clients, loans and receipts",
        [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.CAPTURE_LOANS, Right.CAPTURE_RECEIPTS, Right.SEND_SINGLE_SMS],
    ),
    "Viewer": ("Reads clients only", [Right.VIEW_CLIENTS]),
}


def _require_operator(actor: User) -> None:
    if not (actor.is_operator or actor.is_superuser):
        raise PermissionDenied("Only the platform operator manages entities.")


def _require_entity_admin(actor: User, entity: Entity) -> None:
    if actor.is_superuser:
        return
    if actor.entity_id != entity.pk or not actor.has_right(Right.MANAGE_USERS):
        raise PermissionDenied("You may manage users and roles of your own entity only.")


def _clean_entity(data: dict[str, Any], *, instance: Entity | None = None) -> dict[str, Any]:
    cleaned = dict(data)
    errors: dict[str, list[ValidationError]] = {}
    country = cleaned.get("country") or (instance.country if instance else None)
    if country not in COUNTRY_FACTS:
        errors["country"] = [ValidationError("Choose one of ZA, NA, BW, SZ, ZM.", code="invalid_choice")]
    else:
        cleaned["currency"] = COUNTRY_FACTS[country].currency
        cleaned.setdefault("time_zone", COUNTRY_FACTS[country].time_zone)
        if not cleaned.get("time_zone"):
            cleaned["time_zone"] = COUNTRY_FACTS[country].time_zone
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(cleaned.get("time_zone") or "")
    except Exception:  # noqa: BLE001 - any failure means "not a zone"
        errors["time_zone"] = [ValidationError(f"'{cleaned.get('time_zone')}' is not a time zone.", code="invalid_tz")]
    modules = cleaned.get("modules", instance.modules if instance else [])
    bad = [m for m in modules if m not in Module.values]
    if bad:
        errors["modules"] = [ValidationError(f"Unknown module: {', '.join(bad)}.", code="invalid_choice")]
    elif country in COUNTRY_FACTS and ("modules" in cleaned or instance is None or country != instance.country):
        # Judged when the modules or the country are given: an older row that lists one its country
        # lacks has it off already (Entity.has_module), and a change of its name must not fail on it.
        not_here = [Module(m).label for m in modules if not Module(m).offered_in(country)]
        if not_here:
            errors["modules"] = [ValidationError(
                f"{', '.join(not_here)} is offered to lenders in South Africa only (DebiCheck, NAEDO and the "
                f"banks' branch codes are South Africa's); not to a lender in {country_name(country)}.",
                code="not_offered")]
    for field in ("name", "code"):
        if field in cleaned and not str(cleaned[field]).strip():
            errors[field] = [ValidationError("This field is required.", code="required")]
    if errors:
        raise ValidationError(errors)
    return cleaned


def entity_create(*, actor: User, data: dict[str, Any]) -> Entity:
    _require_operator(actor)
    cleaned = _clean_entity(data)
    duplicates = _entity_duplicates(cleaned)
    if duplicates:
        raise ValidationError(duplicates)
    with transaction.atomic():
        entity = Entity.objects.create(**cleaned)
        audit_record(action=AuditAction.ENTITY_CREATED, actor=actor, entity=entity, target=entity, subject=entity.code, after=snapshot(entity))
        for name, (description, rights) in DEFAULT_ROLES.items():
            role = Role.objects.create(entity=entity, name=name, description=description)
            role.rights.set(rights_permissions(rights))
    return entity


def entity_onboard(*, actor: User, data: dict[str, Any], admin: dict[str, Any], admin_password: str) -> tuple[Entity, User]:
    """Create an entity with its default roles and its first administrator, all or nothing."""
    _require_operator(actor)
    with transaction.atomic():
        entity = entity_create(actor=actor, data=data)
        branch = None
        if admin.get("branch_code"):
            branch = branch_create(actor=actor, entity=entity, data={"code": admin.pop("branch_code"), "name": admin.pop("branch_name", "Head office")})
        cleaned, errors = _user_errors(entity, {"cellphone": "", **admin, "home_branch": branch})
        user = User(entity=entity, **cleaned)
        password_problems = _password_errors(admin_password, user)
        if password_problems:
            errors["admin_password"] = password_problems
        if errors:
            raise ValidationError(errors)
        user.set_password(admin_password)
        user.save()
        user.roles.set([Role.objects.get(entity=entity, name="Administrator")])
        audit_record(action=AuditAction.USER_CREATED, actor=actor, entity=entity, target=user, subject=user.username,
                     after={**snapshot(user, exclude=("password",)), "roles": ["Administrator"]})
    return entity, user


def _entity_duplicates(cleaned: dict[str, Any], *, exclude_pk: int | None = None) -> dict[str, list[ValidationError]]:
    """Name and code are unique among all entities, whatever the case."""
    errors: dict[str, list[ValidationError]] = {}
    for field in ("name", "code"):
        value = str(cleaned.get(field) or "").strip()
        if value and Entity.objects.filter(**{f"{field}__iexact": value}).exclude(pk=exclude_pk).exists():
            errors[field] = [ValidationError(f"An entity with this {field} exists already.", code="duplicate")]
    return errors


def entity_update(*, actor: User, entity: Entity, data: dict[str, Any]) -> Entity:
    _require_operator(actor)
    errors: dict[str, list[ValidationError]] = {}
    try:
        cleaned = _clean_entity(data, instance=entity)
    except ValidationError as exc:
        errors.update(exc.error_dict)
        cleaned = dict(data)
    for field, field_errors in _entity_duplicates(cleaned, exclude_pk=entity.pk).items():
        errors.setdefault(field, field_errors)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            locked = Entity.objects.select_for_update().get(pk=entity.pk)
            b, a = apply_changes(locked, cleaned)
            if a:
                audit_record(action=AuditAction.ENTITY_UPDATED, actor=actor, entity=locked, target=locked, subject=locked.code, before=b, after=a)
    except IntegrityError:
        # Another operator took the name or code between our check and our write.
        raise ValidationError(_entity_duplicates(cleaned, exclude_pk=entity.pk) or
                              {"name": [ValidationError("An entity with this name or code exists already.", code="duplicate")]}) from None
    return locked


def region_create(*, actor: User, entity: Entity, name: str) -> Region:
    if not (name or "").strip():
        raise ValidationError({"name": [ValidationError("This field is required.", code="required")]})
    if Region.objects.filter(entity=entity, name__iexact=name.strip()).exists():
        raise ValidationError({"name": [ValidationError("This region exists already.", code="duplicate")]})
    with transaction.atomic():
        region = Region.objects.create(entity=entity, name=name.strip())
        audit_record(action=AuditAction.REGION_CREATED, actor=actor, entity=entity, target=region, subject=region.name)
    return region


def region_update(*, actor: User, region: Region, name: str) -> Region:
    """Rename a region; names are unique within the entity whatever the case."""
    if not actor.is_superuser and actor.entity_id != region.entity_id:
        raise PermissionDenied("You may manage regions of your own entity only.")
    name = " ".join((name or "").split())
    if not name:
        raise ValidationError({"name": [ValidationError("This field is required.", code="required")]})
    duplicate = ValidationError({"name": [ValidationError("This region exists already.", code="duplicate")]})
    if Region.objects.filter(entity_id=region.entity_id, name__iexact=name).exclude(pk=region.pk).exists():
        raise duplicate
    try:
        with transaction.atomic():
            locked = Region.objects.select_for_update().get(pk=region.pk)
            b, a = apply_changes(locked, {"name": name})
            if a:
                audit_record(action=AuditAction.REGION_UPDATED, actor=actor, entity=region.entity, target=locked,
                             subject=locked.name, before=b, after=a)
    except IntegrityError:
        raise duplicate from None
    return locked


def _clean_branch(entity: Entity, data: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(data)
    errors: dict[str, list[ValidationError]] = {}
    for field in ("code", "name"):
        if not str(cleaned.get(field) or "").strip():
            errors[field] = [ValidationError("This field is required.", code="required")]
    if cleaned.get("telephone"):
        try:
            cleaned["telephone"] = parse_phone(cleaned["telephone"], country=entity.country, field="telephone")
        except ValidationError as exc:
            errors.update(exc.error_dict)
    region = cleaned.get("region")
    if region is not None and region.entity_id != entity.pk:
        errors["region"] = [ValidationError("Choose one of your own entity's regions.", code="other_entity")]
    if errors:
        raise ValidationError(errors)
    return cleaned


def branch_create(*, actor: User, entity: Entity, data: dict[str, Any]) -> Branch:
    cleaned = _clean_branch(entity, data)
    if Branch.objects.filter(entity=entity, code__iexact=cleaned["code"]).exists():
        raise ValidationError({"code": [ValidationError("A branch with this code exists already.", code="duplicate")]})
    with transaction.atomic():
        branch = Branch.objects.create(entity=entity, **cleaned)
        audit_record(action=AuditAction.BRANCH_CREATED, actor=actor, entity=entity, target=branch, subject=branch.code, after=snapshot(branch))
    return branch


def branch_update(*, actor: User, branch: Branch, data: dict[str, Any]) -> Branch:
    cleaned = _clean_branch(branch.entity, data)
    if Branch.objects.filter(entity=branch.entity, code__iexact=cleaned["code"]).exclude(pk=branch.pk).exists():
        raise ValidationError({"code": [ValidationError("A branch with this code exists already.", code="duplicate")]})
    with transaction.atomic():
        locked = Branch.objects.select_for_update().get(pk=branch.pk)
        b, a = apply_changes(locked, cleaned)
        if a:
            audit_record(action=AuditAction.BRANCH_UPDATED, actor=actor, entity=locked.entity, target=locked, subject=locked.code, before=b, after=a)
    return locked


def rights_permissions(rights: Iterable[str]) -> list[Permission]:
    """The Permission rows for the given right codenames; unknown names are an error."""
    wanted = set(rights)
    unknown = wanted - set(Right.values)
    if unknown:
        raise ValidationError({"rights": [ValidationError(f"Unknown right: {', '.join(sorted(unknown))}.", code="invalid_choice")]})
    return list(Permission.objects.filter(content_type__app_label="tenancy", codename__in=wanted))


def role_create(*, actor: User, entity: Entity, name: str, rights: Iterable[str], description: str = "") -> Role:
    _require_entity_admin(actor, entity)
    if not (name or "").strip():
        raise ValidationError({"name": [ValidationError("This field is required.", code="required")]})
    if Role.objects.filter(entity=entity, name__iexact=name.strip()).exists():
        raise ValidationError({"name": [ValidationError("A role with this name exists already.", code="duplicate")]})
    permissions = rights_permissions(rights)
    with transaction.atomic():
        role = Role.objects.create(entity=entity, name=name.strip(), description=description)
        role.rights.set(permissions)
        audit_record(
            action=AuditAction.ROLE_CREATED, actor=actor, entity=entity, target=role, subject=role.name,
            after={"name": role.name, "rights": sorted(p.codename for p in permissions)},
        )
    return role


def role_set_rights(*, actor: User, role: Role, rights: Iterable[str], name: str | None = None, description: str | None = None) -> Role:
    _require_entity_admin(actor, role.entity)
    permissions = rights_permissions(rights)
    with transaction.atomic():
        locked = Role.objects.select_for_update().get(pk=role.pk)
        before = {"name": locked.name, "rights": sorted(locked.rights.values_list("codename", flat=True))}
        if name is not None and name.strip():
            if Role.objects.filter(entity=locked.entity, name__iexact=name.strip()).exclude(pk=locked.pk).exists():
                raise ValidationError({"name": [ValidationError("A role with this name exists already.", code="duplicate")]})
            locked.name = name.strip()
        if description is not None:
            locked.description = description
        locked.save()
        locked.rights.set(permissions)
        after = {"name": locked.name, "rights": sorted(p.codename for p in permissions)}
        if after != before:
            audit_record(action=AuditAction.ROLE_RIGHTS_CHANGED, actor=actor, entity=locked.entity, target=locked, subject=locked.name, before=before, after=after)
    return locked


def role_delete(*, actor: User, role: Role) -> None:
    _require_entity_admin(actor, role.entity)
    with transaction.atomic():
        audit_record(
            action=AuditAction.ROLE_DELETED, actor=actor, entity=role.entity, target=role, subject=role.name,
            before={"name": role.name, "rights": sorted(role.rights.values_list("codename", flat=True)),
                    "users": sorted(role.users.values_list("username", flat=True))},
        )
        role.delete()


def _clean_user(entity: Entity | None, data: dict[str, Any], *, instance: User | None = None) -> dict[str, Any]:
    cleaned, errors = _user_errors(entity, data, instance=instance)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _user_errors(
    entity: Entity | None, data: dict[str, Any], *, instance: User | None = None
) -> tuple[dict[str, Any], dict[str, list[ValidationError]]]:
    """The cleaned user fields and every field's errors, so callers can add their own checks
    (roles, password) and report everything in one go."""
    cleaned = dict(data)
    errors: dict[str, list[ValidationError]] = {}
    if "username" in cleaned:
        username = (cleaned.get("username") or "").strip()
        if not username:
            errors["username"] = [ValidationError("This field is required.", code="required")]
        elif User.objects.filter(username__iexact=username).exclude(pk=getattr(instance, "pk", None)).exists():
            errors["username"] = [ValidationError("This username is taken.", code="duplicate")]
        cleaned["username"] = username
    if cleaned.get("cellphone"):
        try:
            cleaned["cellphone"] = parse_phone(cleaned["cellphone"], country=entity.country if entity else "ZA", field="cellphone", mobile=True)
        except ValidationError as exc:
            errors.update(exc.error_dict)
    elif entity is not None and "cellphone" in cleaned:
        # Users receive OTPs and MIS SMS: a cellphone is part of being a user (DOMAIN §1).
        errors["cellphone"] = [ValidationError("A user needs a cellphone number.", code="required")]
    if cleaned.get("disbursement_limit") not in (None, ""):
        try:
            cleaned["disbursement_limit"] = parse_amount(cleaned["disbursement_limit"], field="disbursement_limit",
                                                         allow_zero=True)
        except TypeError:
            errors["disbursement_limit"] = [ValidationError("Enter the limit as text or a Decimal.", code="invalid_amount")]
        except ValidationError as exc:
            errors.update(exc.error_dict)
    branch = cleaned.get("home_branch")
    if branch is not None and (entity is None or branch.entity_id != entity.pk):
        errors["home_branch"] = [ValidationError("Choose one of your own entity's branches.", code="other_entity")]
    return cleaned, errors


def _password_errors(password: str, user: User) -> list[ValidationError]:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        return exc.error_list
    return []


def user_create(
    *, actor: User, entity: Entity, data: dict[str, Any], password: str, roles: Iterable[Role] = ()
) -> User:
    _require_entity_admin(actor, entity)
    cleaned, errors = _user_errors(entity, {"cellphone": "", **data})
    roles = list(roles)
    if any(r.entity_id != entity.pk for r in roles):
        errors["roles"] = [ValidationError("Choose roles of your own entity.", code="other_entity")]
    candidate = User(entity=entity, **cleaned)
    password_problems = _password_errors(password, candidate)
    if password_problems:
        errors["password"] = password_problems
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        candidate.set_password(password)
        candidate.save()
        candidate.roles.set(roles)
        audit_record(
            action=AuditAction.USER_CREATED, actor=actor, entity=entity, target=candidate, subject=candidate.username,
            after={**snapshot(candidate, exclude=("password",)), "roles": sorted(r.name for r in roles)},
        )
    return candidate


def user_update(*, actor: User, user: User, data: dict[str, Any], roles: Iterable[Role] | None = None) -> User:
    entity = user.entity
    if entity is None:
        _require_operator(actor)
    else:
        _require_entity_admin(actor, entity)
    cleaned = _clean_user(entity, data, instance=user)
    for forbidden in ("entity", "is_operator", "is_superuser", "password"):
        cleaned.pop(forbidden, None)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        was_active = locked.is_active
        b, a = apply_changes(locked, cleaned, exclude=("password", "last_login"))
        if a:
            audit_record(action=AuditAction.USER_UPDATED, actor=actor, entity=entity, target=locked, subject=locked.username, before=b, after=a)
        if was_active and not locked.is_active:
            _revoke_api_tokens(actor=actor, user=locked, reason="deactivated")
        if roles is not None:
            roles = list(roles)
            if any(r.entity_id != locked.entity_id for r in roles):
                raise ValidationError({"roles": [ValidationError("Choose roles of your own entity.", code="other_entity")]})
            old = sorted(locked.roles.values_list("name", flat=True))
            locked.roles.set(roles)
            new = sorted(r.name for r in roles)
            if old != new:
                audit_record(
                    action=AuditAction.USER_ROLES_CHANGED, actor=actor, entity=entity, target=locked,
                    subject=locked.username, before={"roles": old}, after={"roles": new},
                )
    return locked


def _revoke_api_tokens(*, actor: User, user: User, reason: str) -> None:
    """Delete the user's API tokens inside the caller's transaction, so a token issued under the
    old password (or to a user now switched off) stops working at once instead of living out its
    hours. Sessions need no such step: Django ties them to the password hash, and refuses
    inactive users."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        audit_record(action=AuditAction.LOGOUT, actor=actor, entity=user.entity, target=user,
                     subject=user.username.lower(), after={"api_token_revoked": True, "reason": reason})


def user_set_password(*, actor: User, user: User, password: str, current_password: str | None = None) -> User:
    """Set `user`'s password: by the user, who must give the current one, or by an administrator
    of the user's entity. The audit entry says who set it, never what it is."""
    errors: dict[str, list[ValidationError]] = {}
    by_self = actor.pk == user.pk
    if by_self:
        if not current_password or not user.check_password(current_password):
            errors["current_password"] = [ValidationError("This is not your current password.", code="wrong_password")]
    elif user.entity_id is None:
        _require_operator(actor)
    else:
        _require_entity_admin(actor, user.entity)
    password_problems = _password_errors(password or "", user)
    if password_problems:
        errors["password"] = password_problems
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.set_password(password)
        locked.save(update_fields=["password"])
        audit_record(action=AuditAction.USER_PASSWORD_SET, actor=actor, entity=locked.entity, target=locked,
                     subject=locked.username, after={"set_by": "self" if by_self else "administrator"})
        _revoke_api_tokens(actor=actor, user=locked, reason="password_set")
    # Lets password-history validators, if configured later, remember this one.
    password_validation.password_changed(password, locked)
    return locked


# --- Sign-in and lock-out ---------------------------------------------------------------------


def login_is_locked(*, username: str, now: dt.datetime | None = None) -> bool:
    """Locked when the last N attempts inside the window all failed (N, window from settings)."""
    now = now or timezone.now()
    window_start = now - dt.timedelta(minutes=settings.IMALI_LOGIN_LOCKOUT_MINUTES)
    recent = list(
        AuditEntry.objects.filter(
            subject=username.lower(),
            action__in=[AuditAction.LOGIN_FAILED, AuditAction.LOGIN_SUCCEEDED],
            created_at__gte=window_start,
        )
        .order_by("-created_at", "-id")
        .values_list("action", flat=True)[: settings.IMALI_LOGIN_MAX_FAILURES]
    )
    return len(recent) >= settings.IMALI_LOGIN_MAX_FAILURES and all(a == AuditAction.LOGIN_FAILED for a in recent)


def login_record(*, username: str, user: User | None, succeeded: bool, ip_address: str | None, locked: bool = False) -> None:
    if locked:
        action = AuditAction.LOGIN_LOCKED
    else:
        action = AuditAction.LOGIN_SUCCEEDED if succeeded else AuditAction.LOGIN_FAILED
    audit_record(
        action=action, actor=user if succeeded else None, entity=getattr(user, "entity", None),
        target=user if succeeded else None, subject=username.lower(), ip_address=ip_address,
    )
