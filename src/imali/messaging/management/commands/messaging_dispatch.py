"""Run a messaging consumer: `manage.py messaging_dispatch`.

Claims queued SMS in priority order, submits them over SMPP, applies delivery receipts and stores
mobile-originated messages. Run as many as needed on as many machines as needed. With no gateway
configured it adds one for the local SMSC (IMALI_SMPP_HOST/PORT/SYSTEM_ID/PASSWORD, defaults
127.0.0.1:2775 imali/secret), which is what `make demo` runs.

A gateway bound as transmitter + receiver (the default) is submitted to on this process's
transmitter session; its receipts and replies come on a receiver session held by a receiver
process (`messaging_receive`) that this command starts beside itself and ends with itself
(`--receiver process`, the default). `--receiver none` leaves receiving to receivers run apart;
`--receiver in-process` binds both sessions here, as a transceiver gateway does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from imali.core.stack import manage
from imali.messaging.dispatch import (
    Dispatcher,
    DispatchPolicy,
    default_batch,
    receiver_needed,
    transports_from_gateways,
)
from imali.messaging.models import Gateway


class Command(BaseCommand):
    help = "Send queued SMS over SMPP and take in delivery receipts and replies."

    def add_arguments(self, parser):
        parser.add_argument("--until-idle", action="store_true", help="Stop once nothing is queued or awaiting a receipt.")
        parser.add_argument("--max-seconds", type=float, default=None)
        parser.add_argument("--batch", type=int, default=None,
                            help="Messages claimed per round: the most a crash can duplicate. "
                                 "Default: the smallest window of the active gateways, so a crash never "
                                 "duplicates more than one window.")
        parser.add_argument("--lease-seconds", type=float, default=60.0)
        parser.add_argument("--backoff-base", type=float, default=2.0)
        parser.add_argument("--receiver", choices=["process", "none", "in-process"], default="process",
                            help="Where receipts of transmitter + receiver gateways are taken: a receiver process "
                                 "started beside this one (default), receivers run apart (none), or here.")

    def handle(self, *args, **options):
        if not Gateway.objects.exists():
            gateway = Gateway(
                name="local-smsc", host=os.environ.get("IMALI_SMPP_HOST", "127.0.0.1"),
                port=int(os.environ.get("IMALI_SMPP_PORT", "2775")),
                system_id=os.environ.get("IMALI_SMPP_SYSTEM_ID", "imali"),
                password=os.environ.get("IMALI_SMPP_PASSWORD", "secret"))
            refused = gateway.destination_problem()
            if refused:
                variable = {"host": "IMALI_SMPP_HOST", "port": "IMALI_SMPP_PORT"}[refused[0]]
                raise CommandError(f"{variable}: {refused[1]}")
            gateway.save()
            self.stdout.write("Added gateway local-smsc for the local SMSC.")
        receiving = options["receiver"]
        transports = transports_from_gateways(role="both" if receiving == "in-process" else "send")
        receiver = None
        if receiving == "process" and receiver_needed():
            # Its own process: taking receipts in (a Python object per deliver_sm) must not share
            # this one's interpreter lock with the submits. It ends itself if this process is killed.
            receiver = subprocess.Popen(manage("messaging_receive", "--parent", str(os.getpid())))
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        batch = options["batch"] or default_batch()
        policy = DispatchPolicy(batch=batch, lease_seconds=options["lease_seconds"],
                                backoff_base=options["backoff_base"], backoff_max=max(options["backoff_base"] * 16, 1.0))
        dispatcher = Dispatcher(transports, policy)
        for t in transports.values():
            t.wait_bound(5)
        self.stdout.write(f"Dispatching through {', '.join(transports) or 'no gateway'}.")
        try:
            dispatcher.run(stop=lambda: stopping["flag"], until_idle=options["until_idle"], max_seconds=options["max_seconds"])
        finally:
            for t in transports.values():
                t.close()
            if receiver is not None:
                # It applies the receipts that came for the last batches before it stops.
                receiver.terminate()
                try:
                    receiver.wait(30)
                except subprocess.TimeoutExpired:
                    receiver.kill()
                    receiver.wait(5)
        self.stdout.write(f"Stopped: {dict(dispatcher.counters)}")
        if not _called_in_process():
            # Every row is committed and every SMPP session unbound by now. The SMPP library's
            # native runtime can still be resolving a future into the stopped event loop while the
            # interpreter finalises, which aborts the process (SIGABRT, seen once in CI under load):
            # end here, with the work's exit code, instead of leaving that race to finalisation.
            self.stdout.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            connections.close_all()
            os._exit(0)


def _called_in_process() -> bool:
    """True when run through call_command (tests, other commands): the caller's process goes on."""
    return os.path.basename(sys.argv[0]) != "manage.py" or len(sys.argv) < 2 or sys.argv[1] != "messaging_dispatch"
