"""Dispatch through the real SMPP transport to the local SMSC with one consumer, against the
chosen library's (smpp34) own bare submit loop on the same SMSC, in the same run.

    .venv/bin/python benchmarks/dispatch_bench.py [--count 20000]

The SMSC runs in its own process (so it does not share the consumer's interpreter lock) and
sends a delivery receipt for every message that asks for one. Ours runs as production does:
the gateway's defaults (window, transmitter + receiver binds), the consumer's default batch
(`default_batch`, what `manage.py messaging_dispatch` claims unless told otherwise), receipts
asked for every message and taken by the receiver process `messaging_dispatch` starts beside
itself (`manage.py messaging_receive`, on the receiver bind, against the same database). "per_s"
is submitted messages per second (all recorded as Submitted); "delivered_per_s" counts until the
last receipt is applied (every message Delivered), from the same start. The baseline ("ratio_to_bare") is the honest best case: a bare smpp34
loop with the same window submitting as fast as the window allows, asking no receipts (so the
SMSC sends none and nothing is stored). The bare loop with receipts asked and drained is measured
too, for reference. The machine's load moves (it is shared), so the runs alternate for `--rounds`
rounds (bare loop, ours with receipts, ours without) and each figure is the best of its runs; the
ratio is taken against the best bare run (the least flattering for ours). CPU seconds per 1,000
messages of each process involved (Linux /proc) are recorded too: they depend less on the load.
Goals: >= 2,000 messages/s and >= 0.5x the bare loop without receipts.
Figures go to benchmarks/results/dispatch_<database>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from enqueue_bench import ROOT, make_entity, setup_database, teardown_database, write_result


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_smsc() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "imali.peers.smsc", "--port", "0", "--http-port", "0", "--receipt-delay", "0"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("SMPP_PORT="):
            return proc, int(line.split()[0].split("=")[1])
    proc.kill()
    raise RuntimeError("the SMSC did not start")


async def bare_loop(port: int, count: int, window: int, receipts: bool) -> float:
    import smpp34

    client = smpp34.Client("127.0.0.1", port, "imali", "secret", bind_type="trx", window_size=window, inbound_capacity=65536)
    smsc = await client.connect()
    received = 0

    async def drain():
        nonlocal received
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                return
            received += 1

    drainer = asyncio.create_task(drain())
    gate = asyncio.Semaphore(window)

    async def one(i):
        async with gate:
            try:
                resp = await smsc.submit_sm(f"2782{i:07d}", b"Your loan is approved", source_addr="Imali", registered_delivery=int(receipts))
            except smpp34.SmppError:
                return False
            return resp.command_status == 0

    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - t0
    print(f"bare loop (receipts={receipts}): {sum(ok)} of {count} accepted in {elapsed:.2f}s")
    await smsc.unbind()
    await client.stop()
    drainer.cancel()
    return sum(ok) / elapsed


def start_receiver(connection) -> subprocess.Popen:
    """`manage.py messaging_receive` as `messaging_dispatch` starts it, on the benchmark's database."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if connection.vendor == "sqlite":
        env["IMALI_SQLITE_PATH"] = db["NAME"]
    else:
        user = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db.get("PASSWORD") else "")
        env["DATABASE_URL"] = f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "messaging_receive", "--parent", str(os.getpid())],
                            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("Receiving for"):
        proc.kill()
        raise RuntimeError(f"the receiver did not start: {line!r}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--window", type=int, default=None, help="Default: the Gateway model's default window.")
    parser.add_argument("--batch", type=int, default=None, help="Default: the consumer's default batch.")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    connection, old = setup_database()
    proc, port = start_smsc()
    try:
        run(connection, port, proc.pid, args)
    finally:
        proc.terminate()
        proc.wait(10)
        teardown_database(connection, old)


def run(connection, port: int, smsc_pid: int, args) -> None:
    from imali.messaging.adapters.smpp import SmppTransport
    from imali.messaging.credits import credits_assign
    from imali.messaging.dispatch import (
        Dispatcher,
        DispatchPolicy,
        default_batch,
        transports_from_gateways,
    )
    from imali.messaging.models import Gateway, OutboxMessage
    from imali.messaging.services import BulkRecipient, messages_enqueue_bulk

    load_before = os.getloadavg()
    args.window = args.window or Gateway._meta.get_field("window").default

    def bare(receipts: bool) -> tuple[float, dict]:
        client_cpu, smsc_cpu = time.process_time(), cpu_seconds(smsc_pid)
        per_s = asyncio.run(bare_loop(port, args.count, args.window, receipts=receipts))
        return per_s, {"client": time.process_time() - client_cpu, "smsc": cpu_seconds(smsc_pid) - smsc_cpu}

    entity, operator = make_entity("benchdispatch")
    credits_assign(actor=operator, entity=entity, channel="sms", amount=args.count * 4 * args.rounds)
    gateway = Gateway.objects.create(name="bench", host="127.0.0.1", port=port, system_id="imali", password="secret",
                                     window=args.window, rate_per_second=1_000_000)
    args.batch = args.batch or default_batch([gateway])
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()" if connection.vendor == "postgresql" else "SELECT 0")
        backend_pid = cur.fetchone()[0]

    def ours(receipts: bool, tag: str) -> tuple[float, int, int, float, dict]:
        """Queue `count` messages, dispatch them with one consumer; (submitted per second, submitted,
        delivered, delivered per second, CPU seconds by process)."""
        messages_enqueue_bulk(entity=entity, actor=operator, message_type="new_loan", text="Your loan is approved",
                              recipients=[BulkRecipient(f"{tag}-{i}", f"+2783{i:07d}") for i in range(args.count)])
        receiver = None
        if receipts:
            # As `manage.py messaging_dispatch` runs by default: submits on the transmitter here,
            # receipts on the receiver bind in the receiver process.
            receiver = start_receiver(connection)
            transports = transports_from_gateways([gateway], role="send")
        else:
            transports = {"bench": SmppTransport(name="bench", host="127.0.0.1", port=port, system_id="imali",
                                                 password="secret", window=args.window, rate_per_second=1_000_000,
                                                 receipts=False)}
        transports["bench"].wait_bound(5)
        dispatcher = Dispatcher(transports, DispatchPolicy(batch=args.batch))
        mine = OutboxMessage.objects.filter(idempotency_key__startswith=f"{tag}-")
        cpu_before = {"dispatcher": time.process_time(), "dispatcher_db": cpu_seconds(backend_pid) if backend_pid else 0.0,
                      "smsc": cpu_seconds(smsc_pid), "receiver": cpu_seconds(receiver.pid) if receiver else 0.0}
        t0 = time.perf_counter()
        if os.environ.get("IMALI_BENCH_PROFILE"):
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                dispatcher.run(until_empty=True, idle_sleep=0)
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        else:
            # The consumer's own loop, as `manage.py messaging_dispatch` runs it.
            dispatcher.run(until_empty=True, idle_sleep=0)
        elapsed = time.perf_counter() - t0
        cpu = {"dispatcher": time.process_time() - cpu_before["dispatcher"],
               "dispatcher_db": (cpu_seconds(backend_pid) - cpu_before["dispatcher_db"]) if backend_pid else 0.0,
               "smsc": cpu_seconds(smsc_pid) - cpu_before["smsc"]}
        submitted = mine.filter(status__in=["submitted", "delivered"]).count()
        delivered, delivered_per_s = 0, 0.0
        if receipts:
            # Until the receiver has applied the last receipt.
            deadline = time.monotonic() + 120
            while mine.filter(status="submitted").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            all_applied = time.perf_counter() - t0
            delivered = mine.filter(status="delivered").count()
            delivered_per_s = delivered / all_applied
            cpu["receiver"] = cpu_seconds(receiver.pid) - cpu_before["receiver"]
            cpu["smsc"] = cpu_seconds(smsc_pid) - cpu_before["smsc"]
            receiver.terminate()
            receiver.wait(30)
            print(f"ours: {delivered} of {args.count} delivered (receipts applied) in {all_applied:.2f}s; "
                  f"receiver: {receiver.stdout.read().strip()}")
        transports["bench"].close()
        print(f"ours (receipts={receipts}): {submitted} of {args.count} submitted in {elapsed:.2f}s")
        return submitted / elapsed, submitted, delivered, delivered_per_s, cpu

    def per_1000(cpu: dict) -> dict:
        return {k: round(v / args.count * 1000, 3) for k, v in cpu.items()}

    bare_runs, with_receipts, without_receipts, loads = [], [], [], []
    bare_with_receipts = bare(receipts=True)
    for n in range(args.rounds):
        loads.append([round(x, 2) for x in os.getloadavg()])
        bare_runs.append(bare(receipts=False))
        with_receipts.append(ours(receipts=True, tag=f"r{n}"))
        without_receipts.append(ours(receipts=False, tag=f"n{n}"))
    best_bare = max(bare_runs, key=lambda r: r[0])
    best = max(with_receipts, key=lambda r: r[0])
    best_without = max(without_receipts, key=lambda r: r[0])
    bare_no_receipts_per_s = best_bare[0]
    per_s, submitted, delivered, delivered_per_s, _ = best
    result = {
        "benchmark": "dispatch over SMPP, one consumer", "database": connection.vendor, "count": args.count,
        "window": args.window, "batch": args.batch, "bind_mode": str(gateway.bind_mode), "receipts": "receiver process",
        "rounds": args.rounds, "per_s": round(per_s), "per_s_runs": [round(r[0]) for r in with_receipts],
        "delivered_per_s": round(max(r[3] for r in with_receipts)),
        "delivered_ratio_to_bare": round(max(r[3] for r in with_receipts) / bare_no_receipts_per_s, 3),
        "bare_loop_per_s": round(bare_no_receipts_per_s),
        "bare_loop_runs_per_s": [round(r[0]) for r in bare_runs], "ratio_to_bare": round(per_s / bare_no_receipts_per_s, 3),
        "baseline": "bare smpp34 loop, same window, no receipts",
        "bare_loop_with_receipts_per_s": round(bare_with_receipts[0]),
        "ratio_to_bare_with_receipts": round(per_s / bare_with_receipts[0], 3),
        "ours_without_receipts_per_s": round(best_without[0]),
        "ours_without_receipts_runs_per_s": [round(r[0]) for r in without_receipts],
        "ratio_without_receipts_to_bare": round(best_without[0] / bare_no_receipts_per_s, 3),
        "cpu_ms_per_message": {"bare_loop": per_1000(best_bare[1]), "ours_with_receipts": per_1000(best[4]),
                               "ours_without_receipts": per_1000(best_without[4])},
        "goal_per_s_min": 2000, "goal_ratio_min": 0.5,
        "submitted": submitted, "delivered_after": delivered, "library": "smpp34",
        "load_average_before": [round(x, 2) for x in load_before], "load_average_rounds": loads,
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
    }
    path = write_result(f"dispatch_{connection.vendor}.json", result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
