"""The "phone": a small web page of the local SMSC listing what each number received, with a
form to answer as that phone (an OTP read off the page, a STOP typed in). Plain asyncio HTTP/1.1,
loopback only, one request per connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import phonenumbers
import phonenumbers.timezone

from imali.core.localtime import time_label

if TYPE_CHECKING:
    from .server import SmscPeer

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>The phone — local SMSC</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem}}
section{{border:1px solid #ccc;border-radius:.5rem;padding:.5rem 1rem;margin:1rem 0}}
.mo{{color:#064}} .msg{{white-space:pre-wrap;margin:.25rem 0}} small{{color:#666}}</style></head><body>
<h1>The phone</h1><p>Messages the local SMSC delivered, per number. Answer as the phone below.</p>
{sections}
<section><h2>Send from any number</h2>{form}</section></body></html>"""


def _zone_of(number: str) -> str:
    """The phone's own zone, from its number's country (a handset shows its local time); UTC
    when the number says none."""
    try:
        zones = phonenumbers.timezone.time_zones_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return "UTC"
    return zones[0] if zones and zones[0] != "Etc/Unknown" else "UTC"


def _when(number: str, at: dt.datetime) -> str:
    """ "20:23:05 SAST (18:23:05 UTC)": the phone's local time, labelled, and the peer's UTC."""
    zone = _zone_of(number)
    shown = time_label(at, zone, seconds=True)
    return shown if zone == "UTC" else f"{shown} ({time_label(at, 'UTC', seconds=True)})"


def _form(number: str = "") -> str:
    value = html.escape(number)
    kind = "hidden" if number else "text"
    return (f'<form method="post" action="/reply"><input type="{kind}" name="number" value="{value}" '
            f'placeholder="+27821234567" aria-label="Number"> <input name="text" aria-label="Reply text" '
            f'placeholder="Reply, e.g. STOP" required> <button>Send</button></form>')


class PhonePage:
    def __init__(self, peer: SmscPeer):
        self.peer = peer
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def render(self) -> str:
        sections = []
        for number in sorted(self.peer.phones):
            items = "".join(
                f'<div class="{"mo" if m.mo else "mt"}"><small>{html.escape(_when(number, m.received_at))} '
                f'{"sent" if m.mo else "from " + html.escape(m.sender)}</small>'
                f'<div class="msg">{html.escape(m.text)}</div></div>'
                for m in reversed(self.peer.phones[number]))
            sections.append(f'<section data-number="{html.escape(number)}"><h2>{html.escape(number)}</h2>{items}{_form(number)}</section>')
        return _PAGE.format(sections="".join(sections) or "<p>No messages yet.</p>", form=_form())

    def as_json(self, number: str | None) -> str:
        numbers = [number] if number else sorted(self.peer.phones)
        return json.dumps({n: [{"text": m.text, "from": m.sender, "mo": m.mo, "ids": m.message_ids,
                                "at": m.received_at.isoformat()} for m in self.peer.phones.get(n, [])] for n in numbers})

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
            length = min(int(headers.get("content-length", "0") or 0), 65536)
            body = await reader.readexactly(length) if length else b""
            url = urlsplit(target)
            if method == "GET" and url.path == "/":
                await self._respond(writer, 200, "text/html; charset=utf-8", self.render())
            elif method == "GET" and url.path == "/messages.json":
                number = parse_qs(url.query).get("number", [None])[0]
                await self._respond(writer, 200, "application/json", self.as_json(number))
            elif method == "GET" and url.path == "/stats.json":
                # For tests and benchmarks running this SMSC in its own process.
                accepted = self.peer.accepted_parts
                await self._respond(writer, 200, "application/json", json.dumps(
                    {"stats": dict(self.peer.stats), "accepted": len(accepted),
                     "destinations": len({destination for _, destination in accepted})}))
            elif method == "POST" and url.path == "/reply":
                form = parse_qs(body.decode("utf-8"))
                number = form.get("number", [""])[0].strip()
                text = form.get("text", [""])[0].strip()
                if not number or not text:
                    await self._respond(writer, 400, "text/plain", "number and text are required")
                else:
                    self.peer.inject_mo(number=number, text=text)
                    await self._respond(writer, 303, "text/plain", "sent", location="/")
            else:
                await self._respond(writer, 404, "text/plain", "not found")
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass  # a browser that went away or sent garbage gets no answer; the page serves the next one
        finally:
            writer.close()

    @staticmethod
    async def _respond(writer, status: int, ctype: str, text: str, location: str | None = None) -> None:
        data = text.encode("utf-8")
        reason = {200: "OK", 303: "See Other", 400: "Bad Request", 404: "Not Found"}[status]
        extra = f"Location: {location}\r\n" if location else ""
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                     f"{extra}Connection: close\r\n\r\n".encode("latin-1") + data)
        await writer.drain()
