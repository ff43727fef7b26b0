"""M-PESA confirmation callbacks through the real web stack, against a trivial authenticated API
call on the same server in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/mobile_bench.py [--calls 3000]

A fresh migrated database with one lender, its M-PESA setup and `--loans` loans on the book; one
gunicorn (`--workers` sync workers) on loopback. 50 callers (`--concurrency`) on keep-alive
connections each POST confirmations (unique TransIDs, each for a random loan: the payment recorded
and its receipt posted in one transaction that locks only the loan; the client's SMS marked there
and queued after the commit — a Huey task, on Redis when REDIS_URL is set) to the callback URL; then the same 50 callers GET
/api/mobile-money/providers/ with a token (authentication, one entity-scoped query, JSON) as
the baseline. Figures: rate (calls/s) and p50/p99 latency of each; "ratio" = confirmation rate /
baseline rate (goal >= 0.5), "p99_ms" the confirmations' p99 (goal <= 200 ms). Checks that every
confirmation became exactly one receipt; then queues every confirmation SMS still marked (no
consumer runs here: the sweep does the consumer's work) and checks one SMS per receipt and the
credit ledger down by exactly their cost. Writes benchmarks/results/mobile_<vendor>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imali.config.settings")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(loans: int):
    from tests import factories

    from imali.clients.services import client_account_add
    from imali.loans.services import loan_apply, loan_approve, loan_disburse, product_create
    from imali.messaging.credits import credits_assign
    from imali.mobilemoney.services import setup_save
    from imali.tenancy.models import Branch, User
    from imali.tenancy.rights import Right
    from imali.tenancy.services import entity_create

    operator = User.objects.create(username="bench-op", is_operator=True)
    entity = entity_create(actor=operator, data={"name": "Bench lender", "code": "bench", "country": "ZA", "modules": ["maxsms"]})
    Branch.objects.create(entity=entity, code="HO", name="Head Office", telephone="")
    user = factories.make_user(entity=entity, rights=list(Right), username="bench")
    user.disbursement_limit = Decimal("100000000")
    user.save()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10_000_000)
    product = product_create(entity=entity, actor=user, data={
        "name": "Bench", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "50000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "0", "vat_rate": "15"})
    today = dt.date.today() - dt.timedelta(days=3)
    ids = []
    for i in range(loans):
        client = factories.make_client(entity=entity, id_type="passport", id_number=f"B{i:08d}", cellphone=f"082{i:07d}")
        account = client_account_add(client=client, actor=None, data={
            "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
            "account_number": "1234567890", "account_type": "savings"})
        loan = loan_apply(entity=entity, actor=user, client=client, product=product, principal="20000", instalments=12,
                          applied_on=today)
        loan_approve(loan=loan, actor=user)
        ids.append(loan_disburse(loan=loan, actor=user, payout_account=account, disbursed_on=today).pk)
    setup = setup_save(entity=entity, actor=user, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600000", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:1/"})
    from imali.api.services import api_token_issue

    return entity, setup, ids, api_token_issue(user=user, ip_address=None).key


def run_callers(port: int, concurrency: int, calls: int, make_request):
    """`calls` requests shared by `concurrency` threads on keep-alive connections: latencies and wall time."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    counter = iter(range(calls))

    def caller():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            method, path, body, headers = make_request(n)
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"{response.status} {data[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies), "failures": len(failures), "first_failures": failures[:3], "seconds": round(wall, 3),
        "rate_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1) if latencies else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--loans", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(Path(tempfile.mkdtemp(prefix="imali-bench-")) / "bench.sqlite3")
    else:
        test["NAME"] = os.environ.get("IMALI_PG_TEST_DB", "imali_bench_mobile")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    server = None
    try:
        entity, setup, loan_ids, token = seed(args.loans)
        from imali.loans.models import Receipt
        from imali.mobilemoney.services import callback_url

        db = connection.settings_dict
        env = {**os.environ, "IMALI_SECRET_KEY": settings.SECRET_KEY, "PYTHONPATH": str(ROOT / "src"),
               "IMALI_VAR_DIR": tempfile.mkdtemp(prefix="imali-bench-var-"), "IMALI_DEBUG": "false"}
        if connection.vendor == "sqlite":
            env["IMALI_SQLITE_PATH"] = db["NAME"]
            env.pop("DATABASE_URL", None)
        else:
            env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "imali.config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
             str(args.workers), "--keep-alive", "30", "--log-level", "warning"], env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        setup.callback_base_url = f"http://127.0.0.1:{port}/"
        url = callback_url(setup, "confirmation")
        path = url.split(f":{port}", 1)[1]
        zone = zoneinfo.ZoneInfo(entity.time_zone)
        rng = random.Random(14)
        references = [f"L{rng.choice(loan_ids)}" for _ in range(args.calls)]
        stamp = dt.datetime.now(zone).strftime("%Y%m%d%H%M%S")

        def confirmation(n: int):
            body = json.dumps({
                "TransactionType": "Pay Bill", "TransID": f"BENCH{n:07d}", "TransTime": stamp, "TransAmount": "1.00",
                "BusinessShortCode": "600000", "BillRefNumber": references[n], "InvoiceNumber": "", "OrgAccountBalance": "",
                "ThirdPartyTransID": "", "MSISDN": "27820000000", "FirstName": "Bench", "MiddleName": "", "LastName": ""})
            return "POST", path, body, {"Content-Type": "application/json"}

        def trivial(n: int):
            return "GET", "/api/mobile-money/providers/", None, {"Authorization": f"Token {token}"}

        run_callers(port, args.concurrency, min(200, args.calls), trivial)  # warm every worker
        baseline = run_callers(port, args.concurrency, args.calls, trivial)
        confirmations = run_callers(port, args.concurrency, args.calls, confirmation)
        load = [round(x, 2) for x in os.getloadavg()]
        receipts = Receipt.objects.filter(entity=entity, external_reference__startswith="BENCH").count()
        from imali.messaging.credits import credit_balance
        from imali.messaging.models import OutboxMessage
        from imali.mobilemoney.services import payment_confirmations_sweep

        credits_before = credit_balance(entity=entity)
        sms_started = time.perf_counter()
        payment_confirmations_sweep(older_than=dt.timedelta(0), limit=args.calls)
        sms_seconds = time.perf_counter() - sms_started
        sms = OutboxMessage.objects.filter(entity=entity, idempotency_key__startswith="mm-payment:")
        sms_count = sms.count()
        sms_exact = (sms_count == receipts
                     and credit_balance(entity=entity) == credits_before - sum(sms.values_list("credits", flat=True)))
        settings.HUEY.flush()  # the tasks the web workers queued (no consumer ran them)
        result = {
            "benchmark": "mobile", "vendor": connection.vendor, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "workers": args.workers, "concurrency": args.concurrency,
            "loans": args.loans, "confirmations": confirmations, "trivial_authenticated": baseline,
            "load_average": load, "receipts_posted": receipts,
            "exactly_once": receipts == confirmations["calls"] and not confirmations["failures"],
            "confirmation_sms": {"queued": sms_count, "credits_exact": sms_exact, "seconds": round(sms_seconds, 3)},
            "ratio": round(confirmations["rate_per_s"] / baseline["rate_per_s"], 3) if baseline["rate_per_s"] else None,
            "p99_ms": confirmations["p99_ms"], "goals": {"ratio": ">= 0.5", "p99_ms": "<= 200"},
        }
        out = ROOT / "benchmarks" / "results" / f"mobile_{connection.vendor}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
