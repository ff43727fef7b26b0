"""The operator's SMS gateways: creating and editing them and their routes (services: every write
checks the actor is the operator, validates every field naming it, and audits what changed, never
the secrets), and the live state the dispatcher and receiver processes write for the web process
to read (`HealthReporter`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from imali.core.audit import apply_changes, audit_record, snapshot
from imali.core.countries import Country
from imali.core.models import AuditAction

from .models import Gateway, GatewayHealth, Route

log = logging.getLogger(__name__)

# Write-only: never shown back, never in an audit entry or a log line.
SECRET_FIELDS = ("password", "api_key")
GATEWAY_FIELDS = ("name", "kind", "host", "port", "system_id", "password", "base_url", "api_key", "account",
                  "source_addr", "source_addr_ton", "source_addr_npi", "dest_addr_ton", "dest_addr_npi", "bind_mode",
                  "receipt_id_format", "window", "rate_per_second", "is_active")
# The name is what messages, receipts and replies carry (OutboxMessage.gateway and the others):
# renaming would orphan them, so it is set once.
GATEWAY_EDIT_FIELDS = tuple(f for f in GATEWAY_FIELDS if f != "name")
MAX_WINDOW = 1000
MAX_RANK = 1000


def _require_operator(actor) -> None:
    if not (actor.is_operator or actor.is_superuser):
        raise PermissionDenied("Only the platform operator manages SMS gateways.")


def _error(field: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code)]})


def _audit_view(values: dict[str, Any]) -> dict[str, Any]:
    """An audit before/after with the secrets named but never written."""
    return {k: ("(changed)" if k in SECRET_FIELDS else v) for k, v in values.items()}


def _validate(gateway: Gateway, *, exclude: tuple[str, ...] = ()) -> None:
    """Every field's own rules (Gateway.full_clean: lengths, choices, the unique name, where the
    server may connect: Gateway.destination_problem), then what the kind needs."""
    errors: dict[str, list[ValidationError]] = {}
    if gateway.is_http:  # an aggregator has no SMSC host: the field may stay empty
        exclude = (*exclude, "host")
    try:
        gateway.full_clean(exclude=list(exclude))
    except ValidationError as exc:
        errors.update(exc.error_dict)

    def need(field: str, message: str) -> None:
        if not getattr(gateway, field) and field not in errors:
            errors[field] = [ValidationError(message, code="required")]

    if gateway.is_http:
        need("base_url", "Enter the aggregator's base URL (https://…).")
        need("api_key", "Enter the aggregator's API key.")
        if gateway.kind == "africastalking":
            need("account", "Enter the Africa's Talking username.")
    else:
        need("system_id", "Enter the system id the SMSC gave you.")
        need("password", "Enter the SMPP password the SMSC gave you.")
        for field, what in (("system_id", "system id"), ("password", "password")):
            value = getattr(gateway, field) or ""
            # SMPP writes both as C-Octet strings of ASCII: anything else no SMSC reads as typed.
            if field not in errors and not (value.isascii() and value.isprintable()):
                errors[field] = [ValidationError(f"Write the {what} in letters, digits and signs a keyboard types "
                                                 "without accents (ASCII): SMPP carries nothing else.", code="invalid")]
    if not 1 <= (gateway.window or 0) <= MAX_WINDOW and "window" not in errors:
        errors["window"] = [ValidationError(f"Enter a window between 1 and {MAX_WINDOW}.", code="invalid")]
    if not (gateway.rate_per_second or 0) >= 1 and "rate_per_second" not in errors:
        errors["rate_per_second"] = [ValidationError("Enter a rate of at least 1 message a second.", code="invalid")]
    for field in ("source_addr_ton", "dest_addr_ton"):
        value = getattr(gateway, field)
        if value is not None and value > 6 and field not in errors:
            errors[field] = [ValidationError("Enter a type of number between 0 and 6 (SMPP 3.4 §5.2.5).", code="invalid")]
    for field in ("source_addr_npi", "dest_addr_npi"):
        value = getattr(gateway, field)
        if value is not None and value > 18 and field not in errors:
            errors[field] = [ValidationError("Enter a numbering plan between 0 and 18 (SMPP 3.4 §5.2.6).", code="invalid")]
    if errors:
        raise ValidationError(errors)


def gateway_create(*, actor, data: Mapping[str, Any]) -> Gateway:
    _require_operator(actor)
    gateway = Gateway(**{k: v for k, v in data.items() if k in GATEWAY_FIELDS})
    _validate(gateway)
    with transaction.atomic():
        gateway.save()
        audit_record(action=AuditAction.GATEWAY_CHANGED, actor=actor, target=gateway, subject=gateway.name,
                     after=_audit_view({"created": True, **snapshot(gateway, exclude=("id",))}))
    log.info("gateway %s created by %s", gateway.name, actor)
    return gateway


def gateway_update(*, actor, gateway: Gateway, data: Mapping[str, Any]) -> Gateway:
    """Edit a gateway; an empty password or API key leaves the stored one as it is."""
    _require_operator(actor)
    changes = {k: v for k, v in data.items() if k in GATEWAY_EDIT_FIELDS and not (k in SECRET_FIELDS and not v)}
    candidate = Gateway.objects.get(pk=gateway.pk)
    for name, value in changes.items():
        setattr(candidate, name, value)
    _validate(candidate)
    with transaction.atomic():
        locked = Gateway.objects.select_for_update().get(pk=gateway.pk)
        before, after = apply_changes(locked, changes)
        if after:
            audit_record(action=AuditAction.GATEWAY_CHANGED, actor=actor, target=locked, subject=locked.name,
                         before=_audit_view(before), after=_audit_view(after))
    return locked


def route_add(*, actor, gateway: Gateway, entity, country: str, rank: int) -> Route:
    """Carry `entity`'s messages (None: every lender's) to `country` ("": every country) through
    `gateway`; the lowest rank is tried first."""
    _require_operator(actor)
    country = (country or "").strip().upper()
    if country and country not in Country.values:
        raise _error("country", "Choose one of the countries Imali serves, or every country.")
    if not isinstance(rank, int) or not 0 <= rank <= MAX_RANK:
        raise _error("rank", f"Enter a rank between 0 and {MAX_RANK} (lower is tried first).")
    if entity is not None and not entity.is_active:
        raise _error("entity", "This lender is switched off; choose an active one.")
    with transaction.atomic():
        Gateway.objects.select_for_update().get(pk=gateway.pk)
        if Route.objects.filter(gateway=gateway, entity=entity, country=country).exists():
            raise _error("country", "This gateway has a route for this lender and country already; remove it first "
                                    "to give it another rank.", code="duplicate")
        route = Route.objects.create(gateway=gateway, entity=entity, country=country, rank=rank)
        audit_record(action=AuditAction.GATEWAY_CHANGED, actor=actor, entity=entity, target=gateway,
                     subject=gateway.name, after={"route_added": route_words(route)})
    return route


def route_remove(*, actor, route: Route) -> None:
    _require_operator(actor)
    with transaction.atomic():
        gateway = Gateway.objects.select_for_update().get(pk=route.gateway_id)
        words = route_words(route)
        entity = route.entity
        route.delete()
        audit_record(action=AuditAction.GATEWAY_CHANGED, actor=actor, entity=entity, target=gateway,
                     subject=gateway.name, before={"route_removed": words})


def route_words(route: Route) -> str:
    """ "Acme Loans to Namibia, rank 1"; "every lender to every country, rank 0"."""
    who = route.entity.name if route.entity_id else "every lender"
    where = Country(route.country).label if route.country else "every country"
    return f"{who} to {where}, rank {route.rank}"


# -- live state ---------------------------------------------------------------------------------
# How often a process says "still so" when nothing changed: the screen calls a state older than
# STALE_SECONDS not current (the process that wrote it stopped, or lost the database).
HEARTBEAT_SECONDS = 60
STALE_SECONDS = 3 * HEARTBEAT_SECONDS


def transport_state(transport) -> tuple[bool, str] | None:
    """(connected, why not) of a transport as this process uses it; None while nothing is known
    yet (an SMPP session still connecting for the first time, an HTTP gateway not asked yet)."""
    bound = transport.wait_bound(0) if hasattr(transport, "wait_bound") else transport.is_up
    problem = getattr(transport, "problem", "")
    if hasattr(transport, "bind_types"):  # SMPP: bound, or the reason it is not
        if bound:
            return True, ""
        return (False, problem) if problem else None
    if not bound:
        return False, "the aggregator failed to answer or asked us to slow down; trying again shortly"
    return (True, "") if getattr(transport, "requests", 0) else None


def gateway_health_record(*, gateway_name: str, role: str, connected: bool, problem: str) -> GatewayHealth | None:
    """Write what this process sees of a gateway now (the gateway may have been deleted by hand
    meanwhile: nothing to write then)."""
    gateway = Gateway.objects.filter(name=gateway_name).only("pk").first()
    if gateway is None:
        return None
    now = timezone.now()
    problem = "" if connected else problem[:200]
    row = GatewayHealth.objects.filter(gateway=gateway, role=role).first()
    if row is None:
        return GatewayHealth.objects.create(gateway=gateway, role=role, connected=connected, problem=problem,
                                            changed_at=now, seen_at=now)
    if (row.connected, row.problem) != (connected, problem):
        row.connected, row.problem, row.changed_at = connected, problem, now
    row.seen_at = now
    row.save(update_fields=["connected", "problem", "changed_at", "seen_at"])
    return row


class HealthReporter:
    """Called on every pass of a dispatcher or receiver loop; writes a transport's state when it
    changed and every HEARTBEAT_SECONDS otherwise (a comparison in memory the rest of the time, so
    the loop pays nothing per message)."""

    def __init__(self, transports: Mapping[str, Any], *, heartbeat: float = HEARTBEAT_SECONDS):
        self.transports = transports
        self.heartbeat = heartbeat
        self._written: dict[str, tuple[tuple[bool, str], float]] = {}

    def report(self) -> None:
        now = time.monotonic()
        for name, transport in self.transports.items():
            state = transport_state(transport)
            if state is None:
                continue
            last = self._written.get(name)
            if last is not None and last[0] == state and now - last[1] < self.heartbeat:
                continue
            try:
                gateway_health_record(gateway_name=name, role=getattr(transport, "role", "both"),
                                      connected=state[0], problem=state[1])
            except Exception:  # the screen's state is not worth stopping the sending for
                log.exception("gateway %s: could not record its state", name)
            self._written[name] = (state, now)
