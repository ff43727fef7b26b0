"""Dispatch through the real SMPP transport to the local SMSC with one consumer, against the
chosen library's (smpp34) own bare submit loop on the same SMSC, in the same run.

    .venv/bin/python benchmarks/dispatch_bench.py [--count 20000]

The SMSC runs in its own process (so it does not share the consumer's interpreter lock) and
sends a delivery receipt for every message that asks for one. Bare loop: smpp34 client, window
100, submit_sm as fast as the window allows; once asking receipts and draining them (the same
work as ours, the baseline of "ratio_to_bare"), once without (the library's best case). Ours: messages queued in the outbox,
then one `Dispatcher` (claim by priority, route, submit with window and rate limit, record,
apply receipts) until every message is submitted. Goals: >= 2,000 messages/s and >= 0.5x the
bare loop. Figures go to benchmarks/results/dispatch_<database>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from enqueue_bench import ROOT, make_entity, setup_database, teardown_database, write_result


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--batch", type=int, default=400)
    args = parser.parse_args()
    connection, old = setup_database()
    proc, port = start_smsc()
    try:
        run(connection, port, args)
    finally:
        proc.terminate()
        proc.wait(10)
        teardown_database(connection, old)


def run(connection, port: int, args) -> None:
    from imali.messaging.credits import credits_assign
    from imali.messaging.dispatch import Dispatcher, DispatchPolicy, transports_from_gateways
    from imali.messaging.models import Gateway, OutboxMessage
    from imali.messaging.services import BulkRecipient, messages_enqueue_bulk

    bare_per_s = asyncio.run(bare_loop(port, args.count, args.window, receipts=True))
    bare_no_receipts_per_s = asyncio.run(bare_loop(port, args.count, args.window, receipts=False))

    entity, operator = make_entity("benchdispatch")
    credits_assign(actor=operator, entity=entity, channel="sms", amount=args.count * 2)
    messages_enqueue_bulk(entity=entity, actor=operator, message_type="new_loan", text="Your loan is approved",
                          recipients=[BulkRecipient(f"k{i}", f"+2783{i:07d}") for i in range(args.count)])
    gateway = Gateway.objects.create(name="bench", host="127.0.0.1", port=port, system_id="imali", password="secret",
                                     window=args.window, rate_per_second=1_000_000)
    transports = transports_from_gateways([gateway])
    transports["bench"].wait_bound(5)
    dispatcher = Dispatcher(transports, DispatchPolicy(batch=args.batch))
    t0 = time.perf_counter()
    if os.environ.get("IMALI_BENCH_PROFILE"):
        import cProfile
        import pstats

        with cProfile.Profile() as prof:
            while dispatcher.step():
                pass
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        while dispatcher.step():
            pass
    elapsed = time.perf_counter() - t0
    submitted = OutboxMessage.objects.filter(status__in=["submitted", "delivered"]).count()
    # Let the last receipts arrive and be applied (not timed).
    deadline = time.monotonic() + 30
    while OutboxMessage.objects.filter(status="submitted").exists() and time.monotonic() < deadline:
        dispatcher.apply_events()
        time.sleep(0.05)
    delivered = OutboxMessage.objects.filter(status="delivered").count()
    transports["bench"].close()
    per_s = submitted / elapsed
    result = {
        "benchmark": "dispatch over SMPP, one consumer", "database": connection.vendor, "count": args.count,
        "window": args.window, "batch": args.batch, "per_s": round(per_s), "bare_loop_per_s": round(bare_per_s),
        "ratio_to_bare": round(per_s / bare_per_s, 3),
        "bare_loop_without_receipts_per_s": round(bare_no_receipts_per_s),
        "ratio_to_bare_without_receipts": round(per_s / bare_no_receipts_per_s, 3), "goal_per_s_min": 2000, "goal_ratio_min": 0.5,
        "submitted": submitted, "delivered_after": delivered, "library": "smpp34",
    }
    path = write_result(f"dispatch_{connection.vendor}.json", result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
