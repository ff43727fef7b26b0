"""Answer the inbound SMS the receiving process queued: `manage.py smsbanking_answer`.

Runs beside the SMS dispatcher (`make demo` starts one). Several may run against PostgreSQL: they
share the queue without waiting on each other. SIGTERM or Ctrl-C stops it after the current batch.
"""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from imali.smsbanking.answering import Answerer


class Command(BaseCommand):
    help = "Answer inbound SMS-banking messages (BALANCE, PIN, PAY, sheet codes, payment notices) as they arrive."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=50, help="Messages answered per transaction.")
        parser.add_argument("--idle-sleep", type=float, default=0.05, help="Seconds between looks at an empty queue.")
        parser.add_argument("--max-seconds", type=float, default=None)
        parser.add_argument("--until-empty", action="store_true", help="Answer what is queued, then stop.")

    def handle(self, *args, **options):
        answerer = Answerer(batch=options["batch"])
        if options["until_empty"]:
            self.stdout.write(f"Answered {answerer.run_until_empty()} messages.")
            return
        stopping = {"flag": False}

        def stop(signum, frame):
            stopping["flag"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write("Answering SMS-banking messages.")
        self.stdout.flush()
        answerer.run(stop=lambda: stopping["flag"], idle_sleep=options["idle_sleep"], max_seconds=options["max_seconds"])
        self.stdout.write(f"Stopped after answering {answerer.answered} messages.")
