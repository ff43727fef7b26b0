"""Take delivery receipts and replies on the receiver binds: `manage.py messaging_receive`.

For every active SMPP gateway bound as transmitter + receiver (the default), this process holds the
receiver session, stores the receipts in bulk and applies them, and stores mobile-originated
messages, while the dispatchers submit on their transmitter sessions. `messaging_dispatch` starts
one beside itself (and ends it); run it alone only when the dispatchers run with `--receiver none`.
"""

from __future__ import annotations

import os
import signal
import sys

from django.core.management.base import BaseCommand
from django.db import connections

from imali.messaging.dispatch import DispatchPolicy, Receiver, transports_from_gateways


class Command(BaseCommand):
    help = "Take SMS delivery receipts and replies on the gateways' receiver sessions."

    def add_arguments(self, parser):
        parser.add_argument("--max-seconds", type=float, default=None)
        parser.add_argument("--parent", type=int, default=None,
                            help="Stop when the process with this id (the dispatcher that started this one) is gone.")

    def handle(self, *args, **options):
        transports = transports_from_gateways(role="receive")
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        parent = options["parent"]

        def should_stop() -> bool:
            # A dispatcher killed outright (SIGKILL) cannot end its receiver: the receiver notices
            # it was orphaned and ends itself.
            return stopping["flag"] or (parent is not None and os.getppid() != parent)

        receiver = Receiver(transports, DispatchPolicy())
        for t in transports.values():
            t.wait_bound(5)
        self.stdout.write(f"Receiving for {', '.join(transports) or 'no gateway'}.")
        self.stdout.flush()
        try:
            receiver.run(stop=should_stop, max_seconds=options["max_seconds"])
        finally:
            for t in transports.values():
                t.close()
        # What the sessions handed over until they unbound, and the receipts whose record has landed since.
        receiver.step(last=True)
        self.stdout.write(f"Stopped: {dict(receiver.counters)}")
        if os.path.basename(sys.argv[0]) == "manage.py" and sys.argv[1:2] == ["messaging_receive"]:
            # As messaging_dispatch: end here, every row committed and every session unbound, rather
            # than leave the SMPP library's native runtime to race the interpreter's finalisation.
            self.stdout.flush()
            sys.stdout.flush()
            sys.stderr.flush()
            connections.close_all()
            os._exit(0)
