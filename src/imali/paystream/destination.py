"""Where the payment-stream adapter may connect: the one rule for the stream's base URL, checked
when an administrator saves it (screen and API alike, in `services.stream_settings_save`) and again
before every call (`services.stream_for`: a row saved under older rules, a setting changed since,
a name that now resolves somewhere else).

The base URL is typed by an entity's administrator, and the web app then connects to it with the
stream's credentials: unchecked, it is a way from the web app to anything the server can reach
(the cloud metadata service, a database, an admin port on the private network). So:

- https only; plain http only to a loopback host, and only where loopback is allowed
  (`PAYSTREAM_ALLOW_LOOPBACK`: on in development, where `make demo` and the tests run the local
  peer on 127.0.0.1; off in production unless the operator sets IMALI_PAYSTREAM_ALLOW_LOOPBACK);
- no user name or password in the URL (the log-on has its own fields; a URL is logged and shown);
- no private, loopback, link-local (the 169.254.169.254 metadata service), shared, reserved,
  multicast or unspecified address — written as an IP literal or reached by resolving the name —
  and no internal-looking name (single label, .internal, .local, .localhost, .home.arpa), unless
  the operator names the host in `PAYSTREAM_ALLOWED_HOSTS` (IMALI_PAYSTREAM_ALLOWED_HOSTS: names,
  addresses or networks, e.g. a bank reached over a VPN at 10.20.0.5);
- an IPv4 address in another spelling (2130706433, 0x7f.1, 127.1) is refused: resolvers read
  those as 127.0.0.1.

Pure but for the name resolution in `resolved_problem`, which `stream_for` calls."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

FIELD = "base_url"
INTERNAL_SUFFIXES = (".internal", ".local", ".localdomain", ".localhost", ".home.arpa", ".intranet", ".lan")
NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _address_problem(address: IpAddress, *, allow_loopback: bool) -> str | None:
    if address.is_loopback:
        return None if allow_loopback else "a loopback address (this server itself) is not allowed here"
    if address.is_link_local:
        return "a link-local address (such as the cloud metadata service) is not allowed"
    if not address.is_global or address.is_multicast:
        return "a private or reserved network address is not allowed"
    return None


def base_url_problem(url: str, *, allow_loopback: bool, allowed_hosts: Iterable[str] = ()) -> str | None:
    """Why `url` may not be the stream's base URL, or None when it may (without resolving names)."""
    allowed_hosts = list(allowed_hosts)
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not one
    except ValueError:
        return "Enter a valid address, e.g. https://stream.example.co.za/api."
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        return "Enter the stream's address, starting https://."
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "Leave the user name and password out of the address: they have their own fields."
    if parts.query or parts.fragment:
        return "Enter the address without a query (?…) or fragment (#…)."
    if port == 0:
        return "Enter a valid address, e.g. https://stream.example.co.za/api."
    address = _address(host)
    loopback = (address is not None and address.is_loopback) or host == "localhost" or host.endswith(".localhost")
    if scheme != "https" and not (loopback and allow_loopback):
        return "The address must start https:// (plain http only reaches a local peer on this machine)."
    if _allowed(host, address, allowed_hosts):
        return None
    if address is None and NUMERIC_HOST.match(host):
        return "Write an IP address in the usual dotted form (e.g. 196.25.1.10), or use the host's name."
    if address is not None:
        problem = _address_problem(address, allow_loopback=allow_loopback)
        return f"{problem.capitalize()}." if problem else None
    if loopback:
        return None if allow_loopback else "A loopback address (this server itself) is not allowed here."
    if "." not in host or host.endswith(INTERNAL_SUFFIXES):
        return "An internal host name is not allowed: use the stream's public name, or ask the operator to allow it."
    return None


def resolved_problem(url: str, *, allow_loopback: bool, allowed_hosts: Iterable[str] = (),
                     resolve=socket.getaddrinfo) -> str | None:
    """`base_url_problem`, then the addresses the host's name resolves to now, each checked as a
    literal would be. A name that does not resolve is no problem here: the call then fails as
    unreachable, like any other."""
    allowed_hosts = list(allowed_hosts)
    problem = base_url_problem(url, allow_loopback=allow_loopback, allowed_hosts=allowed_hosts)
    if problem:
        return problem
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if _address(host) is not None or _allowed(host, None, allowed_hosts):
        return None
    try:
        infos = resolve(host, parts.port or (443 if parts.scheme.lower() == "https" else 80), proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = _address(str(info[4][0]).split("%", 1)[0])
        if address is None or _allowed(host, address, allowed_hosts):
            continue
        problem = _address_problem(address, allow_loopback=allow_loopback)
        if problem:
            return f"{host} resolves to {address}: {problem}."
    return None
