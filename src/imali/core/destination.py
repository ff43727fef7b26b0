"""Where the web app and its workers may connect: the one rule for every outbound destination a
person configures — the payment stream's base URL, the mobile-money providers' base URLs, the HTTP
SMS aggregators' base URLs and the SMPP hosts. Each is checked when it is saved (naming the field)
and again before each connection (a row saved under older rules, a setting changed since, a name
that now resolves somewhere else).

An address typed into a setting is an address the server then connects to, with credentials: left
unchecked it is a way from the web app to anything the server can reach (the cloud metadata
service, a database, an admin port on the private network). So, for a destination an entity's
administrator sets (`trust=Trust.TENANT`):

- https only; plain http only to a loopback host, and only where loopback is allowed
  (`OUTBOUND_ALLOW_LOOPBACK`: on in development, where `make demo` and the tests run the local
  peers on 127.0.0.1; off in production unless the operator sets IMALI_OUTBOUND_ALLOW_LOOPBACK);
- no user name or password in the URL (the log-on has its own fields; a URL is logged and shown);
- no private, loopback, link-local (the 169.254.169.254 metadata service), shared, reserved,
  multicast or unspecified address — written as an IP literal or reached by resolving the name —
  no known metadata address or name, and no internal-looking name (single label, .internal,
  .local, .localhost, .home.arpa), unless the operator names the host in `OUTBOUND_ALLOWED_HOSTS`
  (IMALI_OUTBOUND_ALLOWED_HOSTS: names, addresses or networks, e.g. a bank reached over a VPN at
  10.20.0.5);
- an IPv4 address in another spelling (2130706433, 0x7f.1, 127.1) is refused: resolvers read
  those as 127.0.0.1.

A destination only the platform operator sets (`trust=Trust.OPERATOR`: the SMS gateways, which
have no screen or API and are written by the operator's own commands) may be on a private network
— an SMSC reached over a VPN or a leased line is the usual case — so private and shared addresses
and internal names are allowed there. Everything else holds for it too: https for URLs, no
credentials in URLs, loopback only where allowed, no odd IPv4 spellings, and never link-local,
unspecified, reserved or multicast addresses or the known metadata addresses and names, unless
allow-listed: a mistyped or copied setting must not hand the gateway's credentials to the metadata
service.

Pure but for the name resolution in the `resolved_*` functions, which the callers run just before
they connect."""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

CODE = "destination_refused"  # the error code of a refusal, wherever it is reported
INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".localhost", ".home.arpa", ".intranet", ".lan")
NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$",
                       re.IGNORECASE)
# The cloud providers' instance-metadata services outside 169.254/16: AWS over IPv6, Alibaba (in
# the shared 100.64/10), Azure's wire server (a public address); and their well-known names.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16"))
METADATA_NAMES = frozenset(("metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"))
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Trust(enum.Enum):
    TENANT = "tenant"      # an entity's administrator types it
    OPERATOR = "operator"  # only the platform operator can set it


def _address(host: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    return mapped or address


def _allowed(host: str, address: IpAddress | None, allowed_hosts: Iterable[str]) -> bool:
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        if entry == host:
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def _is_loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def _address_problem(address: IpAddress, *, allow_loopback: bool, trust: Trust) -> str | None:
    # An IPv6 form that carries an IPv4 address (6to4, Teredo) is judged by that address as well.
    embedded = [a for a in (getattr(address, "sixtofour", None), *(getattr(address, "teredo", None) or ())) if a is not None]
    for inner in embedded:
        problem = _address_problem(inner, allow_loopback=allow_loopback, trust=trust)
        if problem:
            return problem
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service address is not allowed"
    if address.is_loopback:
        return None if allow_loopback else "a loopback address (this server itself) is not allowed here"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service) is not allowed"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "an unspecified, reserved or multicast address is not allowed"
    if not address.is_global and trust is not Trust.OPERATOR:
        return "a private or reserved network address is not allowed"
    return None


def _host_problem(host: str, *, allow_loopback: bool, allowed_hosts: list[str], trust: Trust) -> str | None:
    """Why `host` (lower case, without a trailing dot) may not be connected to, without resolving it."""
    address = _address(host)
    if _allowed(host, address, allowed_hosts):
        return None
    if address is None and NUMERIC_HOST.match(host):
        return "Write an IP address in the usual dotted form (e.g. 196.25.1.10), or use the host's name."
    if address is not None:
        problem = _address_problem(address, allow_loopback=allow_loopback, trust=trust)
        return f"{problem[0].upper()}{problem[1:]}." if problem else None
    if not HOST_NAME.match(host):
        return "Enter a valid host name or IP address."
    if host in METADATA_NAMES:
        return "A cloud metadata service name is not allowed."
    if _is_loopback_name(host):
        return None if allow_loopback else "A loopback address (this server itself) is not allowed here."
    if trust is not Trust.OPERATOR and ("." not in host or host.endswith(INTERNAL_SUFFIXES)):
        return "An internal host name is not allowed: use the provider's public name, or ask the operator to allow it."
    return None


def _normal_host(host: str) -> str:
    return (host or "").strip().lower().rstrip(".")


def base_url_problem(url: str, *, allow_loopback: bool, allowed_hosts: Iterable[str] = (),
                     trust: Trust = Trust.TENANT) -> str | None:
    """Why `url` may not be a base URL the server calls, or None when it may (without resolving names)."""
    allowed_hosts = list(allowed_hosts)
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not one
    except ValueError:
        return "Enter a valid address, e.g. https://api.example.co.za/v1."
    scheme = parts.scheme.lower()
    host = _normal_host(parts.hostname or "")
    if scheme not in ("http", "https") or not host:
        return "Enter the address, starting https://."
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "Leave the user name and password out of the address: they have their own fields."
    if parts.query or parts.fragment:
        return "Enter the address without a query (?…) or fragment (#…)."
    if port == 0:
        return "Enter a valid address, e.g. https://api.example.co.za/v1."
    address = _address(host)
    loopback = (address is not None and address.is_loopback) or _is_loopback_name(host)
    if scheme != "https" and not (loopback and allow_loopback):
        return "The address must start https:// (plain http only reaches a local peer on this machine)."
    return _host_problem(host, allow_loopback=allow_loopback, allowed_hosts=allowed_hosts, trust=trust)


def host_problem(host: str, *, port: int | None = None, allow_loopback: bool, allowed_hosts: Iterable[str] = (),
                 trust: Trust = Trust.TENANT) -> str | None:
    """Why a bare host (an SMPP host: no scheme) may not be connected to, without resolving it."""
    raw = (host or "").strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    if not raw:
        return "Enter the host's name or IP address."
    if port is not None and not 1 <= int(port) <= 65535:
        return "Enter a port between 1 and 65535."
    return _host_problem(_normal_host(raw), allow_loopback=allow_loopback, allowed_hosts=list(allowed_hosts), trust=trust)


def _resolved(host: str, port: int, *, allow_loopback: bool, allowed_hosts: list[str], trust: Trust,
              resolve) -> str | None:
    if _address(host) is not None or _allowed(host, None, allowed_hosts):
        return None
    try:
        infos = resolve(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = _address(str(info[4][0]).split("%", 1)[0])
        if address is None or _allowed(host, address, allowed_hosts):
            continue
        problem = _address_problem(address, allow_loopback=allow_loopback, trust=trust)
        if problem:
            return f"{host} resolves to {address}: {problem}."
    return None


def resolved_problem(url: str, *, allow_loopback: bool, allowed_hosts: Iterable[str] = (),
                     trust: Trust = Trust.TENANT, resolve=socket.getaddrinfo) -> str | None:
    """`base_url_problem`, then the addresses the host's name resolves to now, each checked as a
    literal would be. A name that does not resolve is no problem here: the call then fails as
    unreachable, like any other."""
    allowed_hosts = list(allowed_hosts)
    problem = base_url_problem(url, allow_loopback=allow_loopback, allowed_hosts=allowed_hosts, trust=trust)
    if problem:
        return problem
    parts = urlsplit(url)
    return _resolved(_normal_host(parts.hostname or ""), parts.port or (443 if parts.scheme.lower() == "https" else 80),
                     allow_loopback=allow_loopback, allowed_hosts=allowed_hosts, trust=trust, resolve=resolve)


def resolved_host_problem(host: str, port: int, *, allow_loopback: bool, allowed_hosts: Iterable[str] = (),
                          trust: Trust = Trust.TENANT, resolve=socket.getaddrinfo) -> str | None:
    """`host_problem`, then the addresses the name resolves to now."""
    allowed_hosts = list(allowed_hosts)
    problem = host_problem(host, port=port, allow_loopback=allow_loopback, allowed_hosts=allowed_hosts, trust=trust)
    if problem:
        return problem
    raw = (host or "").strip().strip("[]")
    return _resolved(_normal_host(raw), port, allow_loopback=allow_loopback, allowed_hosts=allowed_hosts,
                     trust=trust, resolve=resolve)


# --- with the operator's settings ----------------------------------------------------------------
def rules() -> dict:
    """The operator's settings: OUTBOUND_ALLOW_LOOPBACK and OUTBOUND_ALLOWED_HOSTS."""
    from django.conf import settings

    return {"allow_loopback": bool(getattr(settings, "OUTBOUND_ALLOW_LOOPBACK", False)),
            "allowed_hosts": list(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", ()))}
