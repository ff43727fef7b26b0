"""Loans, instalments, receipts and allocations for a generated book (a BOOK_EXTENSIONS hook of
imali.demo.generator).

About 1.5 loans per client in every state: applications, approved, cancelled, active and paying,
active in arrears (partly paid instalments, missed ones), paid up, handed over and written off,
with one receipt per payment and its allocation. Products are made through the service (few, with
caps checked and audited); the bulk is written in batches without the ORM. The amounts come from
the same pure schedule and allocation code as real loans, so the book's figures are consistent:
instalments add up to the total repayable and every receipt equals its allocations plus change.
Schedules depend only on the terms, not the dates, so they are computed once per distinct terms.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.utils import timezone

from imali.tenancy.models import Entity

from . import pricing
from .allocation import Owing, allocate
from .models import (
    DAY_NUMBER_FIELDS,
    Instalment,
    Loan,
    LoanStatus,
    PaybackType,
    Receipt,
    ReceiptAllocation,
    day_number,
)
from .schedule import add_months, build_schedule, due_dates, months_between
from .services import product_create

ZERO = Decimal("0.00")
BATCH_CLIENTS = 20_000
PAYBACK_TYPES = ("debit_order", "debicheck", "naedo", "eft", "cash", "mobile_money", "social_grant_eft")
PAYBACK_WEIGHTS = (30, 25, 15, 12, 8, 7, 3)
# Outside South Africa its debit streams are not offered (PaybackType.offered_in): a drawn one is
# read as the country's nearest kind, so the random draws (and with them the book) stay the same.
PAYBACK_ELSEWHERE = {"debicheck": "debit_order", "naedo": "debit_order", "social_grant_eft": "eft"}

# (name, credit type, frequency, max principal, max instalments, rate % pm, service fee pm)
PRODUCTS = (
    ("Short-term monthly", "short_term", "monthly", 8000, 6, "5", "60"),
    ("Short-term fortnightly", "short_term", "fortnightly", 4000, 12, "5", "60"),
    ("Short-term weekly", "short_term", "weekly", 2000, 12, "5", "60"),
    ("Unsecured 24 months", "unsecured", "monthly", 50000, 24, "2.3", "60"),
)


def _products(entity: Entity, actor) -> dict[str, list]:
    made = {}
    for name, credit_type, frequency, max_principal, max_instalments, rate, fee in PRODUCTS:
        product = entity.loan_products.filter(name=name).first() or product_create(entity=entity, actor=actor, data={
            "name": name, "credit_type": credit_type, "frequency": frequency, "min_principal": "500",
            "max_principal": str(max_principal), "min_instalments": 1, "max_instalments": max_instalments,
            "interest_rate_pm": rate, "service_fee_pm": fee, "vat_rate": str(pricing.DEFAULT_VAT_RATES[entity.country]),
            # No initiation fee where no cap is recorded (the demo's loans are priced so: _Schedules).
            "charge_initiation_fee": pricing.caps_for(entity.country) is not None,
        })
        made.setdefault(frequency, []).append(product)
    return made


class _Schedules:
    """Schedule amounts per distinct terms, and moved due dates per (start, terms)."""

    def __init__(self, country: str):
        self.country = country
        self.amounts: dict = {}
        self.caps = pricing.caps_for(country)

    def terms(self, product, principal: Decimal, count: int, rate: Decimal | None = None):
        rate = product.interest_rate_pm if rate is None else rate
        key = (product.pk, principal, count, rate)
        if key not in self.amounts:
            # As loan_apply charges it: the cap's maximum where caps are recorded, none elsewhere.
            fee = pricing.max_initiation_fee(principal, self.caps.initiation_fee) if self.caps else ZERO
            start = dt.date(2026, 1, 5)
            dates = [start + dt.timedelta(days=30 * (k + 1)) for k in range(count)]
            schedule = build_schedule(
                principal=principal, rate_pm=rate, frequency=product.frequency, dates=dates,
                start=start, initiation_fee=fee,
                service_fee_per_instalment=pricing.service_fee_per_instalment(product.service_fee_pm, product.frequency),
                vat_rate=product.vat_rate,
            )
            self.amounts[key] = (fee, schedule)
        return self.amounts[key]


def _principal(rng: random.Random, product) -> Decimal:
    top = int(product.max_principal) // 500
    return Decimal(500 * rng.randint(1, max(1, min(top, 6 if product.credit_type == "short_term" else 40))))


def add_loans(connection, summary, rng: random.Random) -> None:
    """BOOK_EXTENSIONS hook: loans for every generated entity's clients."""
    from imali.demo.generator import reserve_ids, table_columns, write_rows

    today = summary.now.date()
    for book in summary.entities:
        entity = Entity.objects.get(pk=book.entity_id)
        actor = None
        products = _products(entity, actor)
        schedules = _Schedules(entity.country)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, payment_frequency, payment_day, payment_move_direction, created_at FROM clients_client "
                "WHERE entity_id = %s ORDER BY id", [entity.pk])
            clients = cursor.fetchall()
        for start in range(0, len(clients), BATCH_CLIENTS):
            _write_batch(connection, entity, clients[start:start + BATCH_CLIENTS], products, schedules, rng, today,
                         reserve_ids, table_columns, write_rows)


LOAN_COLS = ("id", "entity_id", "client_id", "product_id", "status", "principal", "instalments", "frequency", "pay_day",
             "move_direction", "interest_rate_pm", "initiation_fee", "service_fee_pm", "vat_rate", "total_repayable",
             "instalment_amount", "applied_on", "disbursed_on", "paid_up_on", "closed_on", "status_reason", "next_charge_on",
             "created_at", "received_total", "change_total", "last_receipt_on", "disbursed_ord", "paid_up_ord", "last_receipt_ord")
INST_COLS = ("id", "entity_id", "client_id", "loan_id", "seq", "kind", "open", "start_date", "due_date", "start_ord", "due_ord",
             "fee", "vat", "interest", "capital", "amount", "fee_paid", "vat_paid", "interest_paid", "capital_paid", "paid", "paid_on")
RECEIPT_COLS = ("id", "entity_id", "client_id", "loan_id", "amount", "allocated", "change", "value_date", "payback_type",
                "external_reference", "loan_status_before", "created_at", "reversal_reason")
ALLOC_COLS = ("receipt_id", "instalment_id", "fee", "vat", "interest", "capital")


def _write_batch(connection, entity, clients, products, schedules, rng, today, reserve_ids, table_columns, write_rows):
    loans = []
    now = timezone.now()
    for client_id, frequency, pay_day, direction, created_at in clients:
        # 1.5 loans per client on average: the book of 1,000,000 clients has about 1,500,000 loans.
        n_loans = rng.choices((0, 1, 2, 3), weights=(15, 35, 35, 15))[0]
        created = created_at.date() if isinstance(created_at, dt.datetime) else dt.date.fromisoformat(str(created_at)[:10])
        span = max(1, (today - created).days)
        starts = sorted(created + dt.timedelta(days=rng.randrange(span)) for _ in range(n_loans))
        for index, start in enumerate(starts):
            product = rng.choice(products.get(frequency) or products["monthly"])
            principal = _principal(rng, product)
            count = rng.randint(1, product.max_instalments)
            fee, schedule = schedules.terms(product, principal, count)
            day = pay_day if (pay_day and (frequency == "monthly") == (product.frequency == "monthly")) else None
            loans.append(dict(
                entity_id=entity.pk, client_id=client_id, product_id=product.pk, principal=principal, instalments=count,
                frequency=product.frequency, pay_day=day, move_direction=direction or "before",
                interest_rate_pm=product.interest_rate_pm, initiation_fee=fee, service_fee_pm=product.service_fee_pm,
                vat_rate=product.vat_rate, total_repayable=schedule.total_repayable,
                instalment_amount=schedule.instalment_amount, applied_on=start, last=index == len(starts) - 1,
                schedule=schedule, product=product,
            ))
    if not loans:
        return
    first_loan = reserve_ids(connection, Loan, len(loans))
    loan_rows, receipt_rows, alloc_rows = [], [], []
    pending_insts, pending_receipts = [], []
    # Clients with a short-term loan paid out this year: a later one is a repeat loan, charged at
    # most the repeat cap, as loan_apply lowers it (else the loan book refuses to pay it out).
    paid_out_this_year: set[int] = set()
    for offset, loan in enumerate(loans):
        loan_id = first_loan + offset
        start = loan["applied_on"]
        schedule = loan.pop("schedule")
        product = loan.pop("product")
        credit_type = product.credit_type
        is_last = loan.pop("last")
        roll = rng.random()
        recent = (today - start).days < 10
        if is_last and recent and roll < 0.5:
            status = LoanStatus.APPLICATION if roll < 0.25 else LoanStatus.APPROVED
        elif roll < 0.03:
            status = LoanStatus.CANCELLED
        else:
            status = LoanStatus.ACTIVE
        if credit_type == "short_term" and status == LoanStatus.ACTIVE and start.year == today.year:
            paid_out_this_year.add(loan["client_id"])
        elif (credit_type == "short_term" and schedules.caps and loan["client_id"] in paid_out_this_year
              and status in (LoanStatus.APPLICATION, LoanStatus.APPROVED)):
            rate = pricing.capped_rate(loan["interest_rate_pm"], caps=schedules.caps, credit_type=credit_type, on=today,
                                       is_repeat_in_year=True)
            if rate != loan["interest_rate_pm"]:
                _, schedule = schedules.terms(product, loan["principal"], loan["instalments"], rate=rate)
                loan.update(interest_rate_pm=rate, total_repayable=schedule.total_repayable,
                            instalment_amount=schedule.instalment_amount)
        loan.update(id=loan_id, created_at=now, status=status, disbursed_on=None, paid_up_on=None, closed_on=None, status_reason="",
                    next_charge_on=None, received_total=ZERO, change_total=ZERO, last_receipt_on=None)
        if status != LoanStatus.ACTIVE:
            if status == LoanStatus.CANCELLED:
                loan["closed_on"] = start + dt.timedelta(days=2)
                loan["status_reason"] = "Client withdrew"
            loan_rows.append(loan)
            continue
        dates = due_dates(start=start, count=loan["instalments"], frequency=loan["frequency"], pay_day=loan["pay_day"],
                          country=entity.country, move_direction=loan["move_direction"])
        if (credit_type == "short_term" and schedules.caps
                and months_between(start, dates[-1]) > schedules.caps.short_term_max_term_months):
            # As loan_apply would refuse it: pay on the disbursement day of the month instead.
            dates = due_dates(start=start, count=loan["instalments"], frequency=loan["frequency"], pay_day=None,
                              country=entity.country, move_direction="before")
        loan["disbursed_on"] = start
        loan["next_charge_on"] = add_months(dates[-1], 1)
        # Behaviour: most pay every instalment on time; some stop paying (arrears), a few of those
        # are handed over or written off once everything was due.
        behaviour = rng.random()
        stop_at = len(dates) if behaviour < 0.82 else rng.randrange(len(dates))
        previous = start
        loan_insts = []
        for k, (row, due) in enumerate(zip(schedule.instalments, dates, strict=True)):
            loan_insts.append({
                "entity_id": entity.pk, "client_id": loan["client_id"], "loan_id": loan_id, "seq": k + 1,
                "kind": "scheduled", "open": True, "start_date": previous, "due_date": due,
                "start_ord": previous.toordinal(), "due_ord": due.toordinal(), "fee": row.fee, "vat": row.vat,
                "interest": row.interest, "capital": row.capital, "amount": row.amount, "fee_paid": ZERO,
                "vat_paid": ZERO, "interest_paid": ZERO, "capital_paid": ZERO, "paid": ZERO, "paid_on": None,
            })
            previous = due
        payback = rng.choices(PAYBACK_TYPES, weights=PAYBACK_WEIGHTS)[0]
        if not PaybackType(payback).offered_in(entity.country):
            payback = PAYBACK_ELSEWHERE[payback]
        for k, inst in enumerate(loan_insts):
            if inst["due_date"] > today or k > stop_at:
                break
            amount = inst["amount"]
            if k == stop_at:
                if stop_at == len(loan_insts):
                    break
                amount = (amount * Decimal(rng.randint(10, 90)) / 100).quantize(Decimal("0.01"))
            result = allocate(amount, [Owing(key=k, due_date=inst["due_date"], fee=inst["fee"], vat=inst["vat"],
                                             interest=inst["interest"], capital=inst["capital"])])
            line = result.lines[0]
            inst.update(fee_paid=line.fee, vat_paid=line.vat, interest_paid=line.interest, capital_paid=line.capital,
                        paid=line.total, paid_on=inst["due_date"] if line.total == inst["amount"] else None)
            loan["received_total"] += result.allocated
            loan["change_total"] += result.change
            loan["last_receipt_on"] = inst["due_date"]
            pending_receipts.append(({
                "entity_id": entity.pk, "client_id": loan["client_id"], "loan_id": loan_id, "amount": amount,
                "allocated": result.allocated, "change": result.change, "value_date": inst["due_date"],
                "payback_type": payback, "loan_status_before": LoanStatus.ACTIVE, "created_at": now,
                "reversal_reason": "",
            }, len(pending_insts) + k, line))
        all_paid = all(i["paid"] == i["amount"] for i in loan_insts)
        if all_paid:
            loan["status"] = LoanStatus.PAID_UP
            loan["paid_up_on"] = loan_insts[-1]["paid_on"]
        elif dates[-1] < today - dt.timedelta(days=120) and rng.random() < 0.5:
            loan["status"] = LoanStatus.WRITTEN_OFF if rng.random() < 0.5 else LoanStatus.HANDED_OVER
            loan["closed_on"] = dates[-1] + dt.timedelta(days=120)
            loan["status_reason"] = "Generated: long arrears"
            if loan["status"] == LoanStatus.WRITTEN_OFF:
                for inst in loan_insts:
                    inst["open"] = False
        pending_insts.extend(loan_insts)
        loan_rows.append(loan)
    for loan in loan_rows:  # the day numbers Loan.save keeps beside the dates (rows here bypass save)
        for date_field, ord_field in DAY_NUMBER_FIELDS.items():
            loan[ord_field] = day_number(loan[date_field])
    inst_id = reserve_ids(connection, Instalment, len(pending_insts)) if pending_insts else 0
    for k, inst in enumerate(pending_insts):
        inst["id"] = inst_id + k
    receipt_id = reserve_ids(connection, Receipt, len(pending_receipts)) if pending_receipts else 0
    for k, (receipt, inst_index, line) in enumerate(pending_receipts):
        receipt["id"] = receipt_id + k
        receipt["external_reference"] = f"G{receipt['id']}" if receipt["payback_type"] != "cash" else ""
        alloc_rows.append({"receipt_id": receipt["id"], "instalment_id": pending_insts[inst_index]["id"],
                           "fee": line.fee, "vat": line.vat, "interest": line.interest, "capital": line.capital})
        receipt_rows.append(receipt)
    for model, cols, rows in ((Loan, LOAN_COLS, loan_rows), (Instalment, INST_COLS, pending_insts),
                              (Receipt, RECEIPT_COLS, receipt_rows), (ReceiptAllocation, ALLOC_COLS, alloc_rows)):
        if not rows:
            continue
        table, columns, extras = table_columns(model, list(cols))
        write_rows(connection, table, columns, (tuple(row[c] for c in cols) + extras for row in rows))

