"""The one rule for outbound destinations (core/destination.py): what a tenant's administrator may
point the server at, what the operator may, and the settings that relax it. The callers' own
checks (on save, before each connection) are tested with each caller."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from imali.core.destination import (
    Trust,
    base_url_problem,
    host_problem,
    resolved_host_problem,
    resolved_problem,
)

ROOT = Path(__file__).resolve().parents[2]


def _resolving_to(address: str):
    def resolve(host, port, **kwargs):  # what the system resolver answers for the name
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    return resolve


METADATA = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "[fd00:ec2::254]",
            "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "metadata", "metadata.google.internal", "METADATA.goog."]


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("host", METADATA)
def test_the_metadata_service_is_refused_whoever_sets_it(trust, host):
    assert base_url_problem(f"https://{host}/", allow_loopback=True, trust=trust) is not None
    assert host_problem(host, port=2775, allow_loopback=True, trust=trust) is not None


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0x7f.1", "127.1", "017700000001", "0177.0.0.1",
                                  "3232235777"])
def test_ipv4_in_other_spellings_is_refused(trust, host):
    assert base_url_problem(f"https://{host}/", allow_loopback=True, trust=trust) is not None
    assert host_problem(host, port=2775, allow_loopback=True, trust=trust) is not None


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("url", ["https://user:pw@api.example.com/", "https://user@api.example.com/",
                                 "https://api.example.com@169.254.169.254/", "https://:pw@api.example.com/"])
def test_credentials_in_the_url_are_refused(trust, url):
    assert "user name and password" in base_url_problem(url, allow_loopback=True, trust=trust)


@pytest.mark.parametrize("host", ["10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "[fd00::1]",
                                  "smsc.vpn.internal", "smsc"])
def test_private_networks_are_the_operators_to_use_not_a_tenants(host):
    assert base_url_problem(f"https://{host}/", allow_loopback=False) is not None
    assert base_url_problem(f"https://{host}/", allow_loopback=False, trust=Trust.OPERATOR) is None
    assert host_problem(host, port=2775, allow_loopback=False) is not None
    assert host_problem(host, port=2775, allow_loopback=False, trust=Trust.OPERATOR) is None


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "224.0.0.1", "240.0.0.1", "[fe80::1]", "169.254.1.1"])
def test_unspecified_multicast_reserved_and_link_local_are_refused_whoever_sets_them(trust, host):
    assert base_url_problem(f"https://{host}/", allow_loopback=True, trust=trust) is not None


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]", "localhost", "api.localhost"])
def test_loopback_only_where_allowed(trust, host):
    assert base_url_problem(f"http://{host}:8051", allow_loopback=True, trust=trust) is None
    assert base_url_problem(f"http://{host}:8051", allow_loopback=False, trust=trust) is not None
    assert host_problem(host, port=2775, allow_loopback=True, trust=trust) is None
    assert host_problem(host, port=2775, allow_loopback=False, trust=trust) is not None


@pytest.mark.parametrize("trust", list(Trust))
def test_a_name_resolving_to_loopback_is_refused_where_loopback_is_not_allowed(trust):
    to_loopback = _resolving_to("127.0.0.1")
    assert resolved_problem("https://api.example.com/", allow_loopback=False, trust=trust, resolve=to_loopback)
    assert resolved_problem("https://api.example.com/", allow_loopback=True, trust=trust, resolve=to_loopback) is None
    assert resolved_host_problem("smsc.example.com", 2775, allow_loopback=False, trust=trust, resolve=to_loopback)
    # "localhost" through the real resolver, as the adapters would reach it.
    assert resolved_problem("http://localhost:8051", allow_loopback=False, trust=trust) is not None
    assert resolved_host_problem("localhost", 2775, allow_loopback=False, trust=trust) is not None


@pytest.mark.parametrize("trust", list(Trust))
def test_a_name_resolving_to_the_metadata_service_is_refused(trust):
    problem = resolved_problem("https://api.example.com/", allow_loopback=True, trust=trust,
                               resolve=_resolving_to("169.254.169.254"))
    assert problem and "169.254.169.254" in problem
    assert resolved_host_problem("smsc.example.com", 2775, allow_loopback=True, trust=trust,
                                 resolve=_resolving_to("fd00:ec2::254"))


def test_a_name_resolving_to_a_private_address_is_the_operators_only():
    to_private = _resolving_to("10.1.2.3")
    assert resolved_problem("https://api.example.com/", allow_loopback=False, resolve=to_private)
    assert resolved_problem("https://api.example.com/", allow_loopback=False, trust=Trust.OPERATOR, resolve=to_private) is None


@pytest.mark.parametrize("trust", list(Trust))
def test_the_operators_allowance_names_a_host_an_address_or_a_network(trust):
    assert base_url_problem("https://169.254.169.254/", allow_loopback=False, trust=trust,
                            allowed_hosts=["169.254.169.254"]) is None
    assert base_url_problem("https://10.20.0.5/", allow_loopback=False, trust=trust, allowed_hosts=["10.20.0.0/16"]) is None
    assert base_url_problem("https://metadata/", allow_loopback=False, trust=trust, allowed_hosts=["metadata"]) is None
    assert host_problem("127.0.0.1", port=2775, allow_loopback=False, trust=trust, allowed_hosts=["127.0.0.1"]) is None
    assert resolved_problem("https://api.example.com/", allow_loopback=False, trust=trust, allowed_hosts=["10.1.0.0/16"],
                            resolve=_resolving_to("10.1.2.3")) is None
    # Another address is still refused, and https is still required: the allowance is about where, not how.
    assert base_url_problem("https://169.254.169.253/", allow_loopback=False, trust=trust,
                            allowed_hosts=["169.254.169.254"]) is not None
    assert base_url_problem("http://10.20.0.5/", allow_loopback=False, trust=trust, allowed_hosts=["10.20.0.5"]) is not None


@pytest.mark.parametrize("trust", list(Trust))
@pytest.mark.parametrize("url", ["http://api.example.com/", "ftp://api.example.com/", "api.example.com", "https:///v1",
                                 "https://api.example.com/?x=1", "https://api.example.com:0/", "https://api.example.com:99999/"])
def test_only_plain_https_urls(trust, url):
    assert base_url_problem(url, allow_loopback=True, trust=trust) is not None


@pytest.mark.parametrize("host", ["smsc.example.com/x", "smsc example.com", "user@smsc.example.com", "", "   ",
                                  "http://smsc.example.com"])
def test_an_smpp_host_is_a_host(host):
    assert host_problem(host, port=2775, allow_loopback=True, trust=Trust.OPERATOR) is not None


def test_an_smpp_port_is_a_port():
    assert host_problem("smsc.example.com", port=0, allow_loopback=True) is not None
    assert host_problem("smsc.example.com", port=70000, allow_loopback=True) is not None
    assert host_problem("smsc.example.com", port=2775, allow_loopback=False) is None
    assert host_problem("196.25.1.10", port=2775, allow_loopback=False) is None


def _settings(tmp_path, **env) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("IMALI_") and k != "DATABASE_URL"}
    base.update(IMALI_VAR_DIR=str(tmp_path), PYTHONPATH=str(ROOT / "src"), **env)
    done = subprocess.run([sys.executable, "-c", "import imali.config.settings as s; "
                           "print(s.OUTBOUND_ALLOW_LOOPBACK, ','.join(s.OUTBOUND_ALLOWED_HOSTS) or '-')"],
                          env=base, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_settings_and_their_earlier_payment_stream_names(tmp_path):
    prod = {"IMALI_ENV": "production", "IMALI_SECRET_KEY": "x" * 64, "IMALI_EMAIL_HOST": "smtp.example.com"}
    assert _settings(tmp_path) == ["True", "-"]  # development: the local peers on loopback
    assert _settings(tmp_path, **prod) == ["False", "-"]
    assert _settings(tmp_path, **prod, IMALI_OUTBOUND_ALLOW_LOOPBACK="on",
                     IMALI_OUTBOUND_ALLOWED_HOSTS="10.20.0.0/16, smsc.vpn") == ["True", "10.20.0.0/16,smsc.vpn"]
    assert _settings(tmp_path, **prod, IMALI_PAYSTREAM_ALLOW_LOOPBACK="on",
                     IMALI_PAYSTREAM_ALLOWED_HOSTS="bank.vpn") == ["True", "bank.vpn"]
    assert _settings(tmp_path, IMALI_OUTBOUND_ALLOW_LOOPBACK="off", IMALI_PAYSTREAM_ALLOW_LOOPBACK="on",
                     IMALI_OUTBOUND_ALLOWED_HOSTS="a.vpn", IMALI_PAYSTREAM_ALLOWED_HOSTS="b.vpn") == ["False", "a.vpn"]
