"""Generate a large realistic book (scale tests, demos). Refused in production."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from imali.demo.generator import COUNTRIES, generate_book
from imali.tenancy.models import User

GENERATOR_OPERATOR = "generator.operator"


class Command(BaseCommand):
    help = "Generate N clients (with entities, branches, staff, employers and accounts) from a seed."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--entities-per-country", type=int, default=1)
        parser.add_argument("--countries", default=",".join(COUNTRIES), help="Comma-separated, e.g. ZA,NA")
        parser.add_argument("--code-prefix", default=None, help="Entity codes start with this (default s<seed>)")
        parser.add_argument("--operator", default=None, help="Username of the operator recorded as creator")

    def _operator(self, username: str | None) -> User:
        if username:
            user = User.objects.filter(username=username, is_operator=True).first()
            if user is None:
                raise CommandError(f"No platform operator named '{username}'.")
            return user
        user = User.objects.filter(is_operator=True).order_by("pk").first()
        if user is None:
            # A system account that records who created the entities; it cannot sign in.
            user = User(username=GENERATOR_OPERATOR, is_operator=True, first_name="Book", last_name="Generator")
            user.set_unusable_password()
            user.save()
        return user

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("generate_book writes made-up clients: it never runs with IMALI_ENV=production.")
        countries = tuple(c.strip().upper() for c in options["countries"].split(",") if c.strip())
        started = time.perf_counter()

        def progress(done: int, total: int, message: str) -> None:
            self.stdout.write(f"{time.perf_counter() - started:8.1f}s  {done:>10,} / {total:,}  {message}")

        try:
            summary = generate_book(
                clients=options["clients"], seed=options["seed"], actor=self._operator(options["operator"]),
                countries=countries, entities_per_country=options["entities_per_country"],
                code_prefix=options["code_prefix"], progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for book in summary.entities:
            self.stdout.write(
                f"  {book.code:<16} {book.country}  clients {book.first_client_number}-{book.last_client_number}"
                f" (ids {book.first_client_id}-{book.last_client_id}), {book.account_count:,} accounts"
            )
        self.stdout.write(self.style.SUCCESS(
            f"Generated {summary.clients:,} clients, {summary.accounts:,} accounts, {summary.users} users, "
            f"{summary.employers} employers in {len(summary.entities)} entities; elapsed {summary.seconds:.1f}s"
        ))
