"""MO "BALANCE" → reply submitted to the SMSC, end to end, under a burst from different numbers.

    .venv/bin/python benchmarks/smsbanking_bench.py [--count 200]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python benchmarks/smsbanking_bench.py

The local SMSC runs in its own process. `count` clients, each with its own cellphone and a loan on
the book, text BALANCE through the SMSC's phone page (POST /reply, the phone's "send") as fast as
it takes them; one consumer (the dispatcher, as `manage.py messaging_dispatch` runs it) stores each
MO, the engine answers with the loan page's figures, and the dispatcher submits the reply. Latency
per number = the SMSC's receive time of the reply − the SMSC's time of the MO, both on the SMSC's
clock, so it is the whole path. Baseline in the same run: the same burst from other numbers texting
HELP (stored, logged and answered, but no loan read), so "ratio_to_help" is what the balance itself
costs. Goal: p95_s <= 2. Figures go to benchmarks/results/smsbanking_<database>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from enqueue_bench import ROOT, make_entity, setup_database, teardown_database, write_result


def start_smsc() -> tuple[subprocess.Popen, int, int]:
    proc = subprocess.Popen([sys.executable, "-m", "imali.peers.smsc", "--port", "0", "--http-port", "0", "--receipt-delay", "0"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("SMPP_PORT="):
            smpp, http = (int(part.split("=")[1]) for part in line.split())
            return proc, smpp, http
    proc.kill()
    raise RuntimeError("the SMSC did not start")


def send_burst(http_port: int, numbers: list[str], text: str) -> None:
    """Each phone sends once, through the phone page, on a few threads (a burst, not a queue)."""
    def send(chunk):
        for number in chunk:
            body = urllib.parse.urlencode({"number": number, "text": text}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{http_port}/reply", data=body, method="POST")
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as exc:  # the page answers 303 after accepting
                if exc.code != 303:
                    raise

    threads = [threading.Thread(target=send, args=(numbers[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


SPREAD: dict[str, float] = {}


def latencies(http_port: int, numbers: list[str]) -> list[float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/messages.json", timeout=30) as response:
        phones = json.load(response)
    found, sent_times = [], []
    for number in numbers:
        messages = phones.get(number, [])
        sent = next((dt.datetime.fromisoformat(m["at"]) for m in messages if m["mo"]), None)
        answer = next((dt.datetime.fromisoformat(m["at"]) for m in messages if not m["mo"]), None)
        if sent and answer:
            found.append((answer - sent).total_seconds())
            sent_times.append(sent)
    # How long the phones took to send the whole burst (the SMSC's clock): a burst must be short.
    SPREAD[numbers[0]] = (max(sent_times) - min(sent_times)).total_seconds() if sent_times else 0.0
    return found


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94] if len(values) > 1 else values[0]


def main() -> None:
    if sys.argv[1:2] == ["--send"]:
        send_burst(int(sys.argv[2]), sys.argv[4].split(","), sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    connection, old = setup_database()
    proc, smpp_port, http_port = start_smsc()
    try:
        run(connection, smpp_port, http_port, args.count)
    finally:
        proc.terminate()
        proc.wait(10)
        teardown_database(connection, old)


def run(connection, smpp_port: int, http_port: int, count: int) -> None:
    from decimal import Decimal

    from imali.clients.services import client_account_add, client_create
    from imali.loans import services as loans
    from imali.messaging.credits import credits_assign
    from imali.messaging.dispatch import Dispatcher, DispatchPolicy, transports_from_gateways
    from imali.messaging.models import Gateway, MessageType, OutboxMessage
    from imali.smsbanking import services as banking
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

    gateway = Gateway.objects.create(name="bench", host="127.0.0.1", port=smpp_port, system_id="imali", password="secret",
                                     rate_per_second=1_000_000)
    transports = transports_from_gateways([gateway])
    transports["bench"].wait_bound(5)
    dispatcher = Dispatcher(transports, DispatchPolicy())

    def burst(numbers: list[str], text: str) -> tuple[list[float], float]:
        replies = OutboxMessage.objects.filter(message_type=MessageType.REPLY, number__in=numbers,
                                               status__in=["submitted", "delivered"])
        # The phones send from their own process: a burst that does not wait for the consumer's GIL.
        sender = subprocess.Popen([sys.executable, __file__, "--send", str(http_port), text, ",".join(numbers)], cwd=ROOT)
        t0 = time.perf_counter()
        deadline = time.monotonic() + 120

        def consume():
            dispatcher.run(stop=lambda: time.monotonic() > deadline or (sender.poll() is not None and replies.count() >= len(numbers)),
                           idle_sleep=0.005)

        if os.environ.get("IMALI_BENCH_PROFILE"):
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                consume()
            pstats.Stats(prof).sort_stats("cumtime").print_stats(30)
        else:
            consume()
        elapsed = time.perf_counter() - t0
        sender.wait(30)
        found = latencies(http_port, numbers)
        print(f"{text}: {len(found)} of {len(numbers)} answered in {elapsed:.2f}s; p95 {p95(found):.3f}s; "
              f"sent over {SPREAD[numbers[0]]:.2f}s")
        return found, elapsed

    help_lat, help_elapsed = burst(helpers, "HELP")
    balance_lat, balance_elapsed = burst(borrowers, "BALANCE")
    transports["bench"].close()
    result = {
        "benchmark": "MO BALANCE -> reply submitted, burst through the local SMSC", "database": connection.vendor,
        "count": count, "answered": len(balance_lat),
        "p95_s": round(p95(balance_lat), 3), "p50_s": round(statistics.median(balance_lat), 3),
        "max_s": round(max(balance_lat), 3), "burst_elapsed_s": round(balance_elapsed, 2),
        "burst_sent_over_s": round(SPREAD[borrowers[0]], 2),
        "baseline": "the same burst texting HELP (no loan read), same run",
        "help_p95_s": round(p95(help_lat), 3), "help_answered": len(help_lat),
        "ratio_to_help": round(p95(balance_lat) / p95(help_lat), 3), "goal_p95_s_max": 2.0,
        # The machine's load while measuring: the figures scale with it on a shared box.
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    path = write_result(f"smsbanking_{connection.vendor}.json", result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
