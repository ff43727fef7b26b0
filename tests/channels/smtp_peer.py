"""A small SMTP receiver on loopback for the email tests (RFC 5321: EHLO/HELO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT, with SIZE advertised and enforced). Recipients at `refuse_domain` get 550."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass, field


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class SmtpPeer:
    host: str = "127.0.0.1"
    port: int = 0
    max_size: int = 20 * 1024 * 1024
    refuse_domain: str = "refused.example"
    received: list[Received] = field(default_factory=list)
    sessions: int = 0

    def start(self) -> SmtpPeer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._session, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtp-peer", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1

        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        mail_from, rcpt = None, []
        await say("220 imali-test ESMTP ready")
        try:
            while True:
                raw = await asyncio.wait_for(reader.readline(), 30)
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                verb = line[:4].upper()
                if verb == "EHLO":
                    writer.write(b"250-imali-test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n")
                    await say(f"250 SIZE {self.max_size}")
                elif verb == "HELO":
                    await say("250 imali-test")
                elif verb == "MAIL":
                    mail_from, rcpt = _address(line), []
                    await say("250 OK")
                elif verb == "RCPT":
                    if mail_from is None:
                        await say("503 need MAIL first")
                        continue
                    address = _address(line)
                    if address.lower().endswith("@" + self.refuse_domain):
                        await say(f"550 5.1.1 <{address}>: mailbox unavailable")
                    else:
                        rcpt.append(address)
                        await say("250 OK")
                elif verb == "DATA":
                    if not rcpt:
                        await say("503 need RCPT first")
                        continue
                    await say("354 end data with <CR><LF>.<CR><LF>")
                    data = bytearray()
                    while True:
                        chunk = await reader.readline()
                        if chunk in (b".\r\n", b".\n", b""):
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    if len(data) > self.max_size:
                        await say("552 message exceeds fixed maximum size")
                    else:
                        self.received.append(Received(mail_from or "", list(rcpt), bytes(data)))
                        await say("250 OK queued")
                    mail_from, rcpt = None, []
                elif verb == "RSET":
                    mail_from, rcpt = None, []
                    await say("250 OK")
                elif verb == "NOOP":
                    await say("250 OK")
                elif verb == "QUIT":
                    await say("221 bye")
                    return
                else:
                    await say("502 command not implemented")
        except (TimeoutError, ConnectionError):
            return
        finally:
            writer.close()


def _address(line: str) -> str:
    start, end = line.find("<"), line.find(">")
    return line[start + 1:end] if start != -1 and end > start else line.split(":", 1)[-1].strip()
