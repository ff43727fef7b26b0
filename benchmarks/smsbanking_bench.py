"""MO "BALANCE" → reply submitted to the SMSC, end to end, under a burst from different numbers.

    .venv/bin/python benchmarks/smsbanking_bench.py [--count 200]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/smsbanking_bench.py

`count` clients, each with its own cellphone and a loan on the book, text BALANCE at the same
moment: the local SMSC (in a thread of this process, so the burst can be injected in one tick of its
event loop; its phone page, used over HTTP, spread a 200-phone burst over a minute on a loaded
machine) delivers them over SMPP. The three loops `make demo` runs, each in a thread with its own
database connection and with the production commands' settings: the receiver (`messaging_receive`:
the receiver bind, a pass every 0.2 s) stores the burst and queues it for answering; the answering
worker (`smsbanking_answer`: batches of 50, an empty queue looked at every 0.05 s) answers with the
loan page's figures and queues the replies; the dispatcher (`messaging_dispatch`: the transmitter
bind, an idle look every 0.2 s) submits them. Latency
per number = the SMSC's receive time of the reply − the SMSC's time of the MO, both on the SMSC's
clock, so it is the whole path. Baseline in the same run: the same burst from other numbers texting
HELP (stored, logged and answered, but no loan read), so "ratio_to_help" is what the balance itself
costs. Goal: p95_s <= 2. Figures go to benchmarks/results/smsbanking_<database>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import threading
import time

from enqueue_bench import make_entity, setup_database, teardown_database, write_result


def send_burst(peer, numbers: list[str], text: str) -> None:
    """Every phone sends at once: all the MOs are injected in one tick of the SMSC's loop."""
    peer.call(lambda: [peer.peer.inject_mo(number=number, text=text) for number in numbers])


SPREAD: dict[str, float] = {}
LOAD: list[float] = []  # the 1-minute load average as each burst starts


def latencies(peer, numbers: list[str]) -> list[float]:
    phones = peer.call(lambda: {n: [(m.mo, m.received_at) for m in peer.peer.phones.get(n, [])] for n in numbers})
    found, sent_times = [], []
    for number in numbers:
        messages = phones.get(number, [])
        sent = next((at for mo, at in messages if mo), None)
        answer = next((at for mo, at in messages if not mo), None)
        if sent and answer:
            found.append((answer - sent).total_seconds())
            sent_times.append(sent)
    # How long the phones took to send the whole burst (the SMSC's clock): a burst must be short.
    SPREAD[numbers[0]] = (max(sent_times) - min(sent_times)).total_seconds() if sent_times else 0.0
    return found


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="The answering worker's batch (smsbanking_answer --batch).")
    args = parser.parse_args()
    connection, old = setup_database()
    from imali.peers.smsc import SmscConfig, run_in_thread

    peer = run_in_thread(SmscConfig())
    try:
        run(connection, peer, args.count, args.batch)
    finally:
        peer.stop()
        teardown_database(connection, old)


def run(connection, peer, count: int, batch: int) -> None:
    from decimal import Decimal

    from django.db import connections

    from imali.clients.services import client_account_add, client_create
    from imali.loans import services as loans
    from imali.messaging.credits import credits_assign
    from imali.messaging.dispatch import (
        Dispatcher,
        DispatchPolicy,
        Receiver,
        transports_from_gateways,
    )
    from imali.messaging.models import Gateway, MessageType, OutboxMessage
    from imali.smsbanking import services as banking
    from imali.smsbanking.answering import Answerer
    from imali.tenancy.models import User

    entity, operator = make_entity("benchsmsbank")
    credits_assign(actor=operator, entity=entity, channel="sms", amount=count * 10)
    actor = User.objects.create(username="bench-admin", entity=entity, disbursement_limit=Decimal("1000000"))
    banking.settings_update(actor=actor, entity=entity, data={"enabled": True, "service_address": "Imali"})
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Monthly", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    branch = entity.branches.first()
    borrowers = [f"+2782{7000000 + i:07d}" for i in range(count)]
    helpers = [f"+2782{8000000 + i:07d}" for i in range(count)]
    started = time.perf_counter()
    on = loans.local_today(entity) - dt.timedelta(days=45)
    for i, number in enumerate(borrowers):
        client = client_create(entity=entity, actor=actor, data={
            "branch": branch, "title": "Ms", "full_names": "Bench Client", "surname": f"Number{i}", "id_type": "passport",
            "id_number": f"BN{i:07d}", "date_of_birth": dt.date(1990, 1, 1), "gender": "F", "cellphone": number,
            "payment_day": 25})
        account = client_account_add(client=client, actor=actor, data={
            "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
            "account_number": f"12{i:08d}", "account_type": "savings"})
        loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="2000",
                                instalments=6, applied_on=on)
        loans.loan_approve(loan=loan, actor=actor)
        loans.loan_disburse(loan=loan, actor=actor, payout_account=account, disbursed_on=on)
    print(f"book of {count} borrowers built in {time.perf_counter() - started:.1f}s")

    gateway = Gateway.objects.create(name="bench", host="127.0.0.1", port=peer.port, system_id="imali", password="secret",
                                     rate_per_second=1_000_000)
    sending = transports_from_gateways([gateway], role="send")
    receiving = transports_from_gateways([gateway], role="receive")
    for t in (*sending.values(), *receiving.values()):
        t.wait_bound(5)
    dispatcher = Dispatcher(sending, DispatchPolicy())
    receiver = Receiver(receiving, DispatchPolicy())
    answerer = Answerer(batch=batch)
    done = threading.Event()

    def loop(name, body):
        def target():
            try:
                if os.environ.get("IMALI_BENCH_PROFILE"):  # where each loop spends its time
                    import cProfile
                    import pstats

                    with cProfile.Profile() as prof:
                        body()
                    print(f"--- {name}")
                    pstats.Stats(prof).sort_stats("cumtime").print_stats(25)
                else:
                    body()
            except Exception as exc:  # the figures would be wrong: say so loudly
                print(f"{name} stopped: {exc!r}")
                raise
            finally:
                connections.close_all()
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    threads = [loop("receiver", lambda: receiver.run(stop=done.is_set)),
               loop("answerer", lambda: answerer.run(stop=done.is_set)),
               loop("dispatcher", lambda: dispatcher.run(stop=done.is_set))]

    def burst(numbers: list[str], text: str) -> tuple[list[float], float]:
        replies = OutboxMessage.objects.filter(message_type=MessageType.REPLY, number__in=numbers,
                                               status__in=["submitted", "delivered"])
        LOAD.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        send_burst(peer, numbers, text)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and replies.count() < len(numbers):
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        # The last replies' submit_sm may still be on the wire when the outbox says submitted.
        time.sleep(0.5)
        found = latencies(peer, numbers)
        print(f"{text}: {len(found)} of {len(numbers)} answered in {elapsed:.2f}s; p95 {p95(found):.3f}s; "
              f"sent over {SPREAD[numbers[0]]:.2f}s")
        return found, elapsed

    help_lat, help_elapsed = burst(helpers, "HELP")
    balance_lat, balance_elapsed = burst(borrowers, "BALANCE")
    done.set()
    for thread in threads:
        thread.join(30)
    for t in (*sending.values(), *receiving.values()):
        t.close()
    result = {
        "benchmark": "MO BALANCE -> reply submitted, burst through the local SMSC", "database": connection.vendor,
        "count": count, "answered": len(balance_lat),
        "p95_s": round(p95(balance_lat), 3), "p50_s": round(statistics.median(balance_lat), 3),
        "max_s": round(max(balance_lat), 3), "burst_elapsed_s": round(balance_elapsed, 2),
        "burst_sent_over_s": round(SPREAD[borrowers[0]], 2),
        "baseline": "the same burst texting HELP (no loan read), same run",
        "help_p95_s": round(p95(help_lat), 3), "help_answered": len(help_lat),
        "ratio_to_help": round(p95(balance_lat) / p95(help_lat), 3), "goal_p95_s_max": 2.0,
        "answer_batch": batch, "pipeline": "receiver -> answering worker -> dispatcher, one thread each",
        # The machine's load while measuring: the figures scale with it on a shared box.
        "load_average_1m": round(os.getloadavg()[0], 2), "load_average_1m_at_bursts": [round(x, 2) for x in LOAD],
        "cpus": os.cpu_count(),
    }
    path = write_result(f"smsbanking_{connection.vendor}.json", result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
