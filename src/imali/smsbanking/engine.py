"""The keyword engine: messaging stores each inbound SMS and hands it here (INBOUND_HANDLERS).
For an entity with SMS banking on, the sender is a payment provider, a loan officer, a client or
anyone; the first word picks the command (English defaults, the entity's aliases); the answer is
queued as a Reply (the transactional priority, the first after OTPs), within two segments. Texts
that carry a PIN or a code are masked in the stored message once read."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.formatting import counted, duration_text, format_money
from imali.core.localtime import datetime_label
from imali.core.models import AuditAction
from imali.loans.services import local_today
from imali.messaging.inbound import _opt_out
from imali.messaging.models import InboundMessage, MarketingOptOut, MessageType
from imali.messaging.services import Outgoing, message_enqueue, messages_enqueue_many
from imali.signing import security as otp_security
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from . import rules, services
from .models import (
    BankingRequest,
    BankingSettings,
    CollectionSheet,
    CollectionSource,
    Command,
    PaymentProvider,
    RateCounter,
)
from .security import secret_matches_none

logger = logging.getLogger(__name__)


@dataclass
class Answer:
    outcome: str
    replies: list[tuple[str, str, Client | None, User | None]] = field(default_factory=list)  # number, text, client, user
    masked_text: str | None = None  # the stored message's text when it carried a secret


@dataclass
class Context:
    entity: Entity
    conf: BankingSettings
    message: InboundMessage
    officer: User | None
    clients: list[Client]
    words: list[str]
    today: dt.date
    aliases: dict[str, str]
    lookups: Lookups | None = None

    def book(self, client: Client) -> list | None:
        """The client's open loans and schedules when the batch read them already."""
        return self.lookups.book(client) if self.lookups is not None else None

    def reply(self, text: str, **kw) -> tuple[str, str, Client | None, User | None]:
        client = self.clients[0] if len(self.clients) == 1 else None
        return self.message.number, text, kw.get("client", client), kw.get("user", self.officer)


class Lookups:
    """What the engine reads about the lenders again and again: the SMS-banking settings, keyword
    aliases and payment providers, kept for `seconds` (the answering worker keeps them a few
    seconds, so a change in Setup applies within seconds; 0: read for every message); and, for a
    batch (`prefetch`), the loan officers and clients of its numbers and its rate counts, read in
    a few statements for the whole batch instead of a few per message."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self._loaded = float("-inf")
        self._by_entity: dict[int, BankingSettings] = {}
        self._by_address: dict[str, list[BankingSettings]] = {}
        self._aliases: dict[int, dict[str, str]] = {}
        self._providers: dict[int, dict[str, PaymentProvider]] = {}
        self._officers: dict[tuple[int, str], User | None] = {}
        self._clients: dict[tuple[int, str], list[Client]] = {}
        self._books: dict[int, list] = {}  # client id -> [(loan, schedule)], read for a chunk
        self.over_rate: dict[int, bool] = {}  # inbound id -> refused by the rate limit (counted already)
        self.pending: list | None = None  # a batch's answers, finished together (`finish_many`)
        self.refused: set[tuple[int, str]] = set()  # numbers told of the rate limit in this batch

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded < self.seconds:
            return
        confs = list(BankingSettings.objects.select_related("entity").filter(enabled=True, entity__is_active=True))
        self._by_entity = {c.entity_id: c for c in confs}
        self._by_address = {}
        for c in confs:
            if c.service_address:
                self._by_address.setdefault(c.service_address.casefold(), []).append(c)
        self._aliases.clear()
        self._providers.clear()
        self._loaded = time.monotonic()

    def settings_for(self, message: InboundMessage) -> BankingSettings | None:
        """The SMS-banking settings of the lender the message was sent to: the one whose service
        address it was sent to, when exactly one lender has that address; else the one messaging
        matched by number. The address comes first: a number can belong to clients of two lenders
        (or be a recycled number), and messaging's match by number picks one of them, which must
        not answer a message sent to the other with its own client's balance."""
        self._refresh()
        if message.to_address:
            found = self._by_address.get(message.to_address.casefold(), [])
            if len(found) == 1:
                return found[0]
        if message.entity_id is not None and message.entity_id in self._by_entity:
            return self._by_entity[message.entity_id]
        return None

    def aliases(self, entity_id: int) -> dict[str, str]:
        if entity_id not in self._aliases:
            self._aliases[entity_id] = services.aliases_of(entity_id=entity_id)
        return self._aliases[entity_id]

    def provider(self, entity_id: int, number: str) -> PaymentProvider | None:
        if entity_id not in self._providers:
            self._providers[entity_id] = {p.sender.casefold(): p for p in
                                          PaymentProvider.objects.filter(entity_id=entity_id, active=True)}
        return self._providers[entity_id].get(number.casefold())

    def officer(self, entity: Entity, number: str) -> User | None:
        key = (entity.pk, number)
        if key not in self._officers:
            self._officers[key] = User.objects.filter(entity=entity, cellphone=number, is_active=True).order_by("id").first()
        return self._officers[key]

    def clients(self, entity: Entity, number: str) -> list[Client]:
        key = (entity.pk, number)
        if key not in self._clients:
            self._clients[key] = list(Client.objects.filter(entity=entity, cellphone=number).order_by("number")[:5])
        return self._clients[key]

    def book(self, client: Client) -> list | None:
        return self._books.get(client.pk)

    def prefetch(self, messages: list[InboundMessage]) -> None:
        """For a batch: its officers and clients in one statement each, and its rate counts (the
        non-staff requests per lender and number) in a few, under the counters' row locks."""
        self._officers, self._clients, self._books, self.over_rate = {}, {}, {}, {}
        ours = [(m, conf) for m in messages if (conf := self.settings_for(m)) is not None
                and self.provider(conf.entity_id, m.number) is None]
        if not ours:
            return
        entity_ids = {conf.entity_id for _, conf in ours}
        numbers = {m.number for m, _ in ours}
        for key in {(conf.entity_id, m.number) for m, conf in ours}:
            self._officers[key] = None
            self._clients[key] = []
        for user in (User.objects.filter(entity_id__in=entity_ids, cellphone__in=numbers, is_active=True)
                     .select_related("entity").order_by("-id")):
            if (user.entity_id, user.cellphone) in self._officers:
                self._officers[(user.entity_id, user.cellphone)] = user  # newest first: the oldest wins
        for client in Client.objects.filter(entity_id__in=entity_ids, cellphone__in=numbers).order_by("number"):
            mine = self._clients.get((client.entity_id, client.cellphone))
            if mine is not None and len(mine) < 5:
                mine.append(client)
        # What a BALANCE from a registered phone reads: the open loans and schedules of the
        # chunk's clients, in two statements per lender.
        asking: dict[int, list[int]] = {}
        for m, conf in ours:
            if rules.command_of(m.text, self.aliases(conf.entity_id))[0] == Command.BALANCE:
                asking.setdefault(conf.entity_id, []).extend(c.pk for c in self._clients[(conf.entity_id, m.number)])
        for entity_id, client_ids in asking.items():
            self._books.update(services.books_of(entity=Entity(pk=entity_id), client_ids=client_ids))
        counted: dict[tuple[int, int], list[InboundMessage]] = {}
        for m, conf in ours:
            if self._officers[(conf.entity_id, m.number)] is None:
                counted.setdefault((conf.entity_id, conf.requests_per_hour), []).append(m)
        for (entity_id, limit), batch in counted.items():
            self.over_rate.update(_over_rate_many(entity_id=entity_id, messages=batch, limit=limit))


def settings_for(message: InboundMessage) -> BankingSettings | None:
    return Lookups().settings_for(message)


def handle_inbound(message: InboundMessage, *, lookups: Lookups | None = None) -> None:
    """Answer one inbound message. With the answering worker's `lookups` (a batch under way) the
    answer's writes that can be made together (replies, request log) wait for `finish_many`."""
    lookups = lookups or Lookups()
    conf = lookups.settings_for(message)
    if conf is None:
        return
    entity = conf.entity
    out = lookups.pending
    provider = lookups.provider(entity.pk, message.number)
    if provider is not None:
        if conf.service_address and (message.to_address or "").casefold() != conf.service_address.casefold():
            # A genuine notice is sent to our own number; one sent elsewhere is not even recorded.
            _finish(entity, message, Command.NOTICE, Answer("notice_wrong_address"), out)
            return
        _finish(entity, message, Command.NOTICE, notice(entity, provider, message), out)
        return
    officer = lookups.officer(entity, message.number)
    aliases = lookups.aliases(entity.pk)
    command, words = rules.command_of(message.text, aliases)
    if message.is_stop:
        command = Command.STOP
    elif command == Command.UNKNOWN and officer is not None and len(words) == 1 and rules.looks_like_sheet_code(words[0]):
        command = Command.SHEET
    clients = lookups.clients(entity, message.number)
    ctx = Context(entity, conf, message, officer, clients, words, local_today(entity), aliases, lookups)
    over = lookups.over_rate.get(message.pk)
    if officer is None and (over if over is not None else _over_rate(ctx)):
        answer = Answer("rate_limited")
        if (entity.pk, message.number) not in lookups.refused and _first_refusal(ctx):
            lookups.refused.add((entity.pk, message.number))
            answer.replies.append(ctx.reply(f"You sent more than {conf.requests_per_hour} requests in an hour. "
                                            "Please try again later."))
        answer.masked_text = _mask(message.text)
        _finish(entity, message, command, answer, out)
        return
    masked = None
    if command in SECRET_COMMANDS:
        # Mask first, outside the command's savepoint: a command that fails half-way must not
        # leave the PIN in clear in the stored message (its own masked_text is rolled back with it).
        masked = _mask(message.text, keep_first_number=command == Command.BALANCE)
        if masked != message.text:
            InboundMessage.objects.filter(pk=message.pk).update(text=masked)
    mark = len(out) if out is not None else 0
    # A command that only reads (the common burst: HELP, BALANCE from the registered phone) needs
    # no savepoint of its own inside a batch: the worker's savepoint per message covers it.
    reads_only = out is not None and (command in (Command.HELP, Command.UNKNOWN)
                                      or (command == Command.BALANCE and len(words) < 2))
    try:
        with contextlib.nullcontext() if reads_only else transaction.atomic():
            _finish(entity, message, command, HANDLERS[command](ctx), out)
    except Exception as exc:
        if out is not None:
            del out[mark:]
        if masked is None:
            logger.exception("SMS banking %s failed on inbound message %s", command, message.pk)
        else:  # the traceback's messages can quote the secret
            logger.error("SMS banking %s failed on inbound message %s: %s", command, message.pk, type(exc).__name__)
        _finish(entity, message, command, Answer("failed", masked_text=masked), out)


# Commands whose text can carry a PIN or a one-time code (UNKNOWN: a mistyped keyword before a PIN;
# HELP, STOP and START take no digits, so digits after them are a half-remembered "BALANCE 1001 4826").
SECRET_COMMANDS = frozenset({Command.BALANCE, Command.PIN, Command.UNKNOWN, Command.HELP, Command.STOP, Command.START})


def _over_rate(ctx: Context) -> bool:
    """Count this request in the number's window (an hour from its first request) unless the
    limit is reached. Conditional UPDATEs: the row lock makes a concurrent second message of the
    same phone re-check the condition, so the limit holds under parallel consumers."""
    now = timezone.now()
    mine = RateCounter.objects.filter(entity=ctx.entity, number=ctx.message.number)
    RateCounter.objects.bulk_create([RateCounter(entity=ctx.entity, number=ctx.message.number, window_start=now, count=0)],
                                    ignore_conflicts=True)
    if mine.filter(window_start__lte=now - dt.timedelta(hours=1)).update(window_start=now, count=1):
        return False  # a new window
    return not mine.filter(count__lt=ctx.conf.requests_per_hour).update(count=F("count") + 1)


def _over_rate_many(*, entity_id: int, messages: list[InboundMessage], limit: int) -> dict[int, bool]:
    """`_over_rate` for a batch of one lender's messages, in four statements whatever its size:
    the counters are created, their lapsed windows restarted, then read under their row locks (a
    second worker waits, then reads what this one wrote) and raised by what each number may still
    send. Returns, per message, whether the limit refused it; a number's earliest messages go first."""
    now = timezone.now()
    numbers = sorted({m.number for m in messages})
    mine = RateCounter.objects.filter(entity_id=entity_id, number__in=numbers)
    RateCounter.objects.bulk_create([RateCounter(entity_id=entity_id, number=n, window_start=now, count=0) for n in numbers],
                                    ignore_conflicts=True)
    mine.filter(window_start__lte=now - dt.timedelta(hours=1)).update(window_start=now, count=0)
    counts = dict(mine.select_for_update().values_list("number", "count"))
    wanted: dict[str, int] = {}
    over: dict[int, bool] = {}
    for m in sorted(messages, key=lambda m: m.pk):
        taken = wanted.get(m.number, 0)
        over[m.pk] = counts.get(m.number, 0) + taken >= limit
        if not over[m.pk]:
            wanted[m.number] = taken + 1
    by_increment: dict[int, list[str]] = {}
    for number, n in wanted.items():
        by_increment.setdefault(n, []).append(number)
    for n, group in by_increment.items():
        mine.filter(number__in=group).update(count=F("count") + n)
    return over


def _first_refusal(ctx: Context) -> bool:
    since = timezone.now() - dt.timedelta(hours=1)
    return not BankingRequest.objects.filter(entity=ctx.entity, number=ctx.message.number, created_at__gte=since,
                                             outcome="rate_limited").exists()


_WORDS = re.compile(r"(\s+)")


def mask_on_receipt(text: str, aliases: dict[str, str]) -> str:
    """The text to store the moment a message arrives: masked as the engine will mask it when its
    command can carry a secret (BALANCE keeps the account, the rest loses every digit)."""
    command, _ = rules.command_of(text, aliases)
    if command not in SECRET_COMMANDS:
        return text
    return _mask(text, keep_first_number=command == Command.BALANCE)


def _mask(text: str, *, keep_first_number: bool = False) -> str:
    """The text with every digit starred (any script's: '²' and '١' too); with keep_first_number,
    the word after the keyword (the account) stays when it is plain ASCII digits."""
    out, index = [], 0
    for part in _WORDS.split(text):
        if part and not part.isspace():
            index += 1
            if not (keep_first_number and index == 2 and part.isascii() and part.isdigit()):
                part = "".join("*" if ch.isnumeric() else ch for ch in part)
        out.append(part)
    return "".join(out)


def _finish(entity: Entity, message: InboundMessage, command: str, answer: Answer, out: list | None = None) -> None:
    if out is not None:  # a batch under way: finished with the others
        out.append((entity, message, command, answer))
        return
    finish_many([(entity, message, command, answer)])


def finish_many(items: list[tuple[Entity, InboundMessage, str, Answer]]) -> None:
    """Queue the answers' replies (per lender in one go: `messages_enqueue_many`), log each request
    and mark the messages handled, in a few statements for a whole batch. A reply that cannot be
    queued (no credits, an unusable number) is logged with why; the request is still logged."""
    outgoing: dict[int, list[tuple[int, Outgoing]]] = {}
    entities: dict[int, Entity] = {}
    for i, (entity, message, _, answer) in enumerate(items):
        entities[entity.pk] = entity
        for n, (number, text, client, user) in enumerate(answer.replies):
            outgoing.setdefault(entity.pk, []).append(
                (i, Outgoing(number=number, text=rules.fit(text), idempotency_key=f"smsbank:{message.pk}:{n}",
                             client=client, user=user)))
    first: dict[int, object] = {}
    for entity_id, rows in outgoing.items():
        try:
            results = messages_enqueue_many(entity=entities[entity_id], message_type=MessageType.REPLY,
                                            messages=[o for _, o in rows])
        except ValidationError as exc:  # replies switched off for the lender
            results = [exc] * len(rows)
        for (i, _), result in zip(rows, results, strict=True):
            if isinstance(result, ValidationError):
                message, answer = items[i][1], items[i][3]
                logger.warning("SMS banking reply to inbound %s not queued: %s", message.pk, result.messages[0][:80])
                if not answer.outcome.endswith("(reply not queued)"):
                    answer.outcome = (answer.outcome + " (reply not queued)")[:40]
            else:
                first.setdefault(i, result)
    now = timezone.now()
    BankingRequest.objects.bulk_create([
        BankingRequest(entity=entity, inbound=message, number=message.number, command=command,
                       outcome=answer.outcome[:40], reply=first.get(i), created_at=now)
        for i, (entity, message, command, answer) in enumerate(items)])
    plain = [message.pk for _, message, _, answer in items if answer.masked_text is None]
    if plain:
        InboundMessage.objects.filter(pk__in=plain).update(handled=True)
    for _, message, _, answer in items:
        if answer.masked_text is not None:
            InboundMessage.objects.filter(pk=message.pk).update(handled=True, text=answer.masked_text)


# --- commands --------------------------------------------------------------------------------------

def help_(ctx: Context) -> Answer:
    extra = ""
    if ctx.aliases:
        extra = " Also: " + ", ".join(f"{w}={c.upper()}" for w, c in sorted(ctx.aliases.items()))[:60] + "."
    text = (f"{ctx.entity.name}: BALANCE for your loans (from your registered phone), or BALANCE <account> <PIN> "
            f"from another phone. PIN to set your PIN. STOP: no more marketing; START: allow it again.{extra}")
    if ctx.officer is not None:
        text = (f"{ctx.entity.name} officers: PAY <client> <amount>, <client>/<loan> <amount>... records collections; "
                "send a collection sheet's code back to record it all. BALANCE <account> <PIN> for a client.")
    return Answer("help", [ctx.reply(text)])


def unknown(ctx: Context) -> Answer:
    first = ctx.message.text.strip().split()[:1]
    word = first[0][:15] if first and first[0].isalpha() else ""
    said = f"'{word}' is not a word we know" if word else "We did not understand your message"
    return Answer("unknown", [ctx.reply(f"{ctx.entity.name}: {said}. Text HELP for what you can send.")],
                  masked_text=_mask(ctx.message.text))


def balance(ctx: Context) -> Answer:
    words = ctx.words
    if not words:
        if len(ctx.clients) == 1:
            return Answer("balance", [ctx.reply(services.balance_text(entity=ctx.entity, client=ctx.clients[0], as_of=ctx.today,
                                                                          book=ctx.book(ctx.clients[0])))])
        if not ctx.clients:
            return Answer("balance_unregistered", [ctx.reply(
                f"{ctx.entity.name}: this phone is not registered to an account. Send BALANCE <account> <PIN>.")])
        return Answer("balance_ambiguous", [ctx.reply(
            f"{ctx.entity.name}: several accounts use this phone. Send BALANCE <account>.")])
    if not all(w.isascii() and w.isdigit() and len(w) <= 12 for w in words) or len(words) > 2:
        return Answer("balance_malformed", [ctx.reply("Send BALANCE, or BALANCE <account> <PIN> (digits only).")],
                      masked_text=_mask(ctx.message.text, keep_first_number=True))
    account = int(words[0])
    bound = next((c for c in ctx.clients if c.number == account), None)
    if len(words) == 1:
        if bound is not None:
            return Answer("balance", [ctx.reply(services.balance_text(entity=ctx.entity, client=bound, as_of=ctx.today,
                                                                          book=ctx.book(bound)), client=bound)])
        return Answer("balance_needs_pin", [ctx.reply("From this phone send BALANCE <account> <PIN>.")])
    masked = _mask(ctx.message.text, keep_first_number=True)
    client = Client.objects.filter(entity=ctx.entity, number=account).first()
    wrong = f"{ctx.entity.name}: the account number or PIN is wrong."
    if client is None:
        secret_matches_none(words[1])  # as long as a wrong PIN takes: the delay must not tell which accounts exist
        return Answer("balance_wrong_pin", [ctx.reply(wrong)], masked_text=masked)
    outcome, locked_minutes = services.pin_check(entity=ctx.entity, client=client, pin=words[1], number=ctx.message.number)
    if outcome == services.PinCheck.OK:
        return Answer("balance_pin", [ctx.reply(services.balance_text(entity=ctx.entity, client=client, as_of=ctx.today),
                                                client=client)], masked_text=masked)
    # No "tries left", and no "locked" to the sender either: either would tell a stranger which
    # accounts have a PIN (an unknown account or one without a PIN never locks). The sender gets
    # the words of an unknown account; the client hears of the lock on the registered phone.
    if outcome in (services.PinCheck.LOCKED, services.PinCheck.LOCKED_NOW):
        replies = [ctx.reply(wrong)]
        if outcome == services.PinCheck.LOCKED_NOW and client.cellphone and client.cellphone != ctx.message.number:
            replies.append((client.cellphone, f"{ctx.entity.name}: your SMS banking PIN is locked for "
                                              f"{duration_text(locked_minutes)} after {ctx.conf.pin_max_failures} "
                                              f"wrong tries from another phone. If that was not you, call your branch.",
                            client, None))
        return Answer("balance_locked", replies, masked_text=masked)
    return Answer("balance_wrong_pin", [ctx.reply(wrong)], masked_text=masked)


def pin(ctx: Context) -> Answer:
    if len(ctx.clients) != 1:
        return Answer("pin_unregistered", [ctx.reply(
            f"{ctx.entity.name}: set your PIN from the phone registered to your account, or at the branch.")],
            masked_text=_mask(ctx.message.text))
    client = ctx.clients[0]
    if not ctx.words:
        code = services.pin_change_start(entity=ctx.entity, client=client)
        return Answer("pin_code_sent", _sealed_code_reply(ctx, client, code))
    masked = _mask(ctx.message.text)
    if len(ctx.words) != 2:
        return Answer("pin_malformed", [ctx.reply("Send PIN for a code, then PIN <code> <new PIN>.")], masked_text=masked)
    problem = services.pin_change_finish(entity=ctx.entity, client=client, code=ctx.words[0], pin=ctx.words[1])
    if problem:
        return Answer("pin_refused", [ctx.reply(f"{ctx.entity.name}: {problem}")], masked_text=masked)
    return Answer("pin_set", [ctx.reply(f"{ctx.entity.name}: your SMS banking PIN is set. Never share it.")],
                  masked_text=masked)


def _sealed_code_reply(ctx: Context, client: Client, code: str) -> list:
    """The one-time code goes as an OTP (first in the queue), stored masked with the code sealed in
    its key exactly like the signing app's OTPs, so no outbox row holds it in clear."""
    marker = otp_security.mask_marker(len(code))
    text = (f"{ctx.entity.name}: your code is {marker}. Reply PIN {marker} <new PIN> within "
            f"{services.PIN_CHANGE_MINUTES} minutes. Never share it.")
    # The same code appears twice: seal it once per place would need two keys; say it once instead.
    text = text.replace(f"Reply PIN {marker}", "Reply PIN <code>")
    stored, offset = otp_security.masked(text, len(code))
    key = otp_security.seal(code=code, nonce=f"smsbankpin{ctx.message.pk}", offset=offset)
    message_enqueue(entity=ctx.entity, number=ctx.message.number, text=stored, message_type=MessageType.OTP,
                    idempotency_key=key, client=client)
    return []


def stop(ctx: Context) -> Answer:
    if not ctx.message.is_stop:  # an alias: messaging knows only the English words
        message = InboundMessage.objects.select_related("entity").get(pk=ctx.message.pk)
        message.entity_id = ctx.entity.pk
        message.entity = ctx.entity
        _opt_out(message)
    return Answer("stop", [ctx.reply(f"{ctx.entity.name}: you will get no more marketing SMS. Text START to allow them again.")])


def start(ctx: Context) -> Answer:
    removed, _ = MarketingOptOut.objects.filter(entity=ctx.entity, number=ctx.message.number).delete()
    restored = [c.pk for c in ctx.clients if not c.marketing_consent]
    if restored:
        Client.objects.filter(pk__in=restored).update(marketing_consent=True)
    if removed or restored:
        audit_record(action=AuditAction.SMS_MARKETING_STARTED, actor=None, entity=ctx.entity, subject=ctx.message.number,
                     before={"opted_out": bool(removed)}, after={"marketing_consent": restored, "inbound": ctx.message.pk})
    return Answer("start", [ctx.reply(f"{ctx.entity.name}: you will get our news by SMS again. Text STOP to stop.")])


def _officer_refusal(ctx: Context) -> Answer | None:
    if ctx.officer is None:
        return Answer("pay_not_officer", [ctx.reply(
            f"{ctx.entity.name}: only a loan officer's registered phone may record payments.")])
    if not ctx.officer.has_right(Right.CAPTURE_RECEIPTS):
        return Answer("pay_no_right", [ctx.reply(f"{ctx.entity.name}: your user may not capture receipts.")])
    return None


def _recorded(ctx: Context, rows, resolved, *, label: str) -> Answer:
    total = sum((r.entry.amount for r in resolved), start=resolved[0].entry.amount * 0)
    listed = ", ".join(f"{r.client.number} {format_money(r.entry.amount)}" for r in resolved)
    replies = [ctx.reply(services.rules.fit(
        f"{ctx.entity.name}: {label + ' ' if label else ''}recorded {counted(len(rows), 'payment')}, {services.money(ctx.entity, total)}, unverified until "
        f"the cash is at the branch: {listed}", more="..."), client=None)]
    for r in resolved:
        if r.client.cellphone:
            replies.append((r.client.cellphone, f"{ctx.entity.name}: {ctx.officer.get_full_name() or 'your loan officer'} "
                            f"recorded your payment of {services.money(ctx.entity, r.entry.amount)} to loan {r.loan.pk} on "
                            f"{ctx.today:%Y-%m-%d}. It shows once the cash is at the branch.", r.client, None))
    return Answer("recorded", replies)


def pay(ctx: Context) -> Answer:
    refusal = _officer_refusal(ctx)
    if refusal:
        return refusal
    try:
        entries = rules.parse_collection(rules.after_keyword(ctx.message.text))
        resolved = services.collections_resolve(entity=ctx.entity, entries=entries, on=ctx.today)
    except ValueError as exc:
        return Answer("pay_malformed", [ctx.reply(f"Nothing recorded. {exc}", client=None)])
    try:
        _, rows = services.collections_record(entity=ctx.entity, officer=ctx.officer, resolved=resolved,
                                              source=CollectionSource.OFFICER_SMS, on=ctx.today, inbound=ctx.message)
    except services.Duplicate:
        return Answer("pay_duplicate", [ctx.reply(
            "Nothing recorded: you sent these same payments today already.", client=None)])
    return _recorded(ctx, rows, resolved, label="")


def sheet(ctx: Context) -> Answer:
    refusal = _officer_refusal(ctx)
    if refusal:
        return refusal
    code = (ctx.words[0] if ctx.words else "").upper()
    found = (CollectionSheet.objects.select_for_update().filter(entity=ctx.entity, code=code, officer=ctx.officer).first()
             if code else None)
    if found is None:
        return Answer("sheet_wrong", [ctx.reply(f"Nothing recorded: {code or 'that'} is not a code of one of your sheets.", client=None)])
    if found.used_at is not None:
        when = datetime_label(found.used_at, ctx.entity.time_zone)
        return Answer("sheet_reused", [ctx.reply(f"Nothing recorded: sheet {code} was recorded already on {when}.", client=None)])
    if found.expires_at <= timezone.now():
        when = datetime_label(found.expires_at, ctx.entity.time_zone)
        return Answer("sheet_expired", [ctx.reply(
            f"Nothing recorded: sheet {code} expired on {when}. Print a new one at the branch.", client=None)])
    lines = list(found.lines.select_related("client", "loan"))
    entries = [rules.Entry(line.client.number, line.loan_id, line.amount) for line in lines]
    try:
        resolved = services.collections_resolve(entity=ctx.entity, entries=entries, on=ctx.today)
    except ValueError as exc:
        return Answer("sheet_stale", [ctx.reply(f"Nothing recorded: the sheet changed since it was printed. {exc}", client=None)])
    try:
        message, rows = services.collections_record(
            entity=ctx.entity, officer=ctx.officer, resolved=resolved, source=CollectionSource.SHEET_CODE, on=ctx.today,
            inbound=ctx.message, fingerprint=f"sheet:{found.pk}")
    except services.Duplicate:
        return Answer("sheet_reused", [ctx.reply(f"Nothing recorded: sheet {code} was recorded already.", client=None)])
    CollectionSheet.objects.filter(pk=found.pk).update(used_at=timezone.now(), used_by_message=message)
    return _recorded(ctx, rows, resolved, label=f"sheet {code}")


def notice(entity: Entity, provider: PaymentProvider, message: InboundMessage) -> Answer:
    match = re.search(provider.pattern, message.text[:services.NOTICE_SCAN])
    if match is None:
        logger.warning("Payment notice %s from %s does not match its pattern", message.pk, provider.name)
        return Answer("notice_unmatched")
    try:
        from imali.core.money import parse_amount
        from imali.core.phones import parse_phone

        if not (match["amount"] and match["phone"] and match["ref"]):  # an optional group that did not take part
            raise ValidationError("A group of the pattern is empty.")
        amount = parse_amount(match["amount"].replace(",", ""), field="amount")
        phone = parse_phone(match["phone"], country=entity.country, field="phone", mobile=True)
    except ValidationError:
        return Answer("notice_unreadable")
    payment, created = services.provider_payment_record(entity=entity, provider=provider, phone=phone, amount=amount,
                                                        reference=match["ref"][:60])
    if not created:
        return Answer("notice_duplicate")
    # No reply: the notice is unverified until a branch user confirms it; confirming tells the client.
    return Answer(f"notice_unverified: {payment.outcome}"[:40])


HANDLERS = {
    Command.HELP: help_, Command.UNKNOWN: unknown, Command.BALANCE: balance, Command.PIN: pin,
    Command.STOP: stop, Command.START: start, Command.PAY: pay, Command.SHEET: sheet,
}
