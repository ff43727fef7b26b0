"""Load the demo book and print the demo logins (idempotent; refused in production)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError

from imali.demo.demo_data import DEMO_URL, load_demo


class Command(BaseCommand):
    help = "Create the demo operator, a ZA and an NA lender with clients, and demo logins; print the logins."

    def handle(self, *args, **options):
        try:
            created, logins = load_demo()
        except (ImproperlyConfigured, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Demo data loaded." if created else "Demo data exists already: nothing changed.")
        self.stdout.write("")
        widths = (max(len(x.who) for x in logins), max(len(x.username) for x in logins),
                  max(len(x.password) for x in logins))
        self.stdout.write(f"  {'Who':<{widths[0]}}  {'Username':<{widths[1]}}  {'Password':<{widths[2]}}  For")
        for login in logins:
            self.stdout.write(f"  {login.who:<{widths[0]}}  {login.username:<{widths[1]}}  "
                              f"{login.password:<{widths[2]}}  {login.purpose}")
        self.stdout.write("")
        self.stdout.write(f"Sign in at {DEMO_URL}")
        self.stdout.write("These passwords are for the local demo only.")
