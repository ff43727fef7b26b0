"""The keyword engine: messaging stores each inbound SMS and hands it here (INBOUND_HANDLERS).
For an entity with SMS banking on, the sender is a payment provider, a loan officer, a client or
anyone; the first word picks the command (English defaults, the entity's aliases); the answer is
queued as a Reply (the transactional priority, the first after OTPs), within two segments. Texts
that carry a PIN or a code are masked in the stored message once read."""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.formatting import format_money
from imali.core.localtime import datetime_label
from imali.core.models import AuditAction
from imali.loans.services import local_today
from imali.messaging.inbound import _opt_out
from imali.messaging.models import InboundMessage, MarketingOptOut, MessageType
from imali.messaging.services import message_enqueue
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

    def reply(self, text: str, **kw) -> tuple[str, str, Client | None, User | None]:
        client = self.clients[0] if len(self.clients) == 1 else None
        return self.message.number, text, kw.get("client", client), kw.get("user", self.officer)


def settings_for(message: InboundMessage) -> BankingSettings | None:
    """The SMS-banking settings of the message's entity: the one messaging matched by number, else
    the one whose service address the message was sent to."""
    if message.entity_id is not None:
        conf = BankingSettings.objects.select_related("entity").filter(entity_id=message.entity_id).first()
        if conf is not None and conf.enabled and conf.entity.is_active:
            return conf
    if message.to_address:
        found = list(BankingSettings.objects.select_related("entity")
                     .filter(enabled=True, service_address__iexact=message.to_address, entity__is_active=True)[:2])
        if len(found) == 1:
            return found[0]
    return None


def handle_inbound(message: InboundMessage) -> None:
    conf = settings_for(message)
    if conf is None:
        return
    entity = conf.entity
    provider = PaymentProvider.objects.filter(entity=entity, sender__iexact=message.number, active=True).first()
    if provider is not None:
        if conf.service_address and (message.to_address or "").casefold() != conf.service_address.casefold():
            # A genuine notice is sent to our own number; one sent elsewhere is not even recorded.
            _finish(entity, message, Command.NOTICE, Answer("notice_wrong_address"))
            return
        _finish(entity, message, Command.NOTICE, notice(entity, provider, message))
        return
    officer = User.objects.filter(entity=entity, cellphone=message.number, is_active=True).order_by("id").first()
    aliases = services.aliases_of(entity_id=entity.pk)
    command, words = rules.command_of(message.text, aliases)
    if message.is_stop:
        command = Command.STOP
    elif command == Command.UNKNOWN and officer is not None and len(words) == 1 and rules.looks_like_sheet_code(words[0]):
        command = Command.SHEET
    clients = list(Client.objects.filter(entity=entity, cellphone=message.number).order_by("number")[:5])
    ctx = Context(entity, conf, message, officer, clients, words, local_today(entity), aliases)
    if officer is None and _over_rate(ctx):
        answer = Answer("rate_limited")
        if _first_refusal(ctx):
            answer.replies.append(ctx.reply(f"You sent more than {conf.requests_per_hour} requests in an hour. "
                                            "Please try again later."))
        answer.masked_text = _mask(message.text)
        _finish(entity, message, command, answer)
        return
    masked = None
    if command in SECRET_COMMANDS:
        # Mask first, outside the command's savepoint: a command that fails half-way must not
        # leave the PIN in clear in the stored message (its own masked_text is rolled back with it).
        masked = _mask(message.text, keep_first_number=command == Command.BALANCE)
        InboundMessage.objects.filter(pk=message.pk).update(text=masked)
    try:
        with transaction.atomic():
            _finish(entity, message, command, HANDLERS[command](ctx))
    except Exception as exc:
        if masked is None:
            logger.exception("SMS banking %s failed on inbound message %s", command, message.pk)
        else:  # the traceback's messages can quote the secret
            logger.error("SMS banking %s failed on inbound message %s: %s", command, message.pk, type(exc).__name__)
        _finish(entity, message, command, Answer("failed", masked_text=masked))


# Commands whose text can carry a PIN or a one-time code (UNKNOWN: a mistyped keyword before a PIN).
SECRET_COMMANDS = frozenset({Command.BALANCE, Command.PIN, Command.UNKNOWN})


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


def _first_refusal(ctx: Context) -> bool:
    since = timezone.now() - dt.timedelta(hours=1)
    return not BankingRequest.objects.filter(entity=ctx.entity, number=ctx.message.number, created_at__gte=since,
                                             outcome="rate_limited").exists()


_WORDS = re.compile(r"(\s+)")


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


def _finish(entity: Entity, message: InboundMessage, command: str, answer: Answer) -> None:
    # Runs inside the savepoint messaging opens per handler; message_enqueue's own savepoints undo a
    # reply that cannot be queued, so no further savepoint is needed here.
    first = None
    for n, (number, text, client, user) in enumerate(answer.replies):
        try:
            out = services.reply_send(entity=entity, number=number, text=text, key=f"{message.pk}:{n}",
                                      client=client, user=user)
            first = first or out
        except ValidationError as exc:
            # No credits or an unusable number: the request is still logged, with why.
            logger.warning("SMS banking reply to inbound %s not queued: %s", message.pk, exc.messages[0][:80])
            answer.outcome = (answer.outcome + " (reply not queued)")[:40]
    BankingRequest.objects.create(entity=entity, inbound=message, number=message.number, command=command,
                                  outcome=answer.outcome[:40], reply=first, created_at=timezone.now())
    changes = {"handled": True}
    if answer.masked_text is not None:
        changes["text"] = answer.masked_text
    InboundMessage.objects.filter(pk=message.pk).update(**changes)


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
            return Answer("balance", [ctx.reply(services.balance_text(entity=ctx.entity, client=ctx.clients[0], as_of=ctx.today))])
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
            return Answer("balance", [ctx.reply(services.balance_text(entity=ctx.entity, client=bound, as_of=ctx.today), client=bound)])
        return Answer("balance_needs_pin", [ctx.reply("From this phone send BALANCE <account> <PIN>.")])
    masked = _mask(ctx.message.text, keep_first_number=True)
    client = Client.objects.filter(entity=ctx.entity, number=account).first()
    wrong = f"{ctx.entity.name}: the account number or PIN is wrong."
    if client is None:
        return Answer("balance_wrong_pin", [ctx.reply(wrong)], masked_text=masked)
    outcome, _ = services.pin_check(entity=ctx.entity, client=client, pin=words[1], number=ctx.message.number)
    if outcome == services.PinCheck.OK:
        return Answer("balance_pin", [ctx.reply(services.balance_text(entity=ctx.entity, client=client, as_of=ctx.today),
                                                client=client)], masked_text=masked)
    if outcome == services.PinCheck.LOCKED:
        return Answer("balance_locked", [ctx.reply(
            f"{ctx.entity.name}: this account's PIN is locked after too many wrong tries. Try later or visit the branch.")],
            masked_text=masked)
    # No "tries left": it would tell a stranger which accounts have a PIN; the same words as an
    # unknown account or an account without a PIN.
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
        f"{ctx.entity.name}: {label} recorded {len(rows)} payments, {services.money(ctx.entity, total)}, unverified until "
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
        entries = rules.parse_collection(ctx.words)
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
