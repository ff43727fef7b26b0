"""The days a person may name anywhere in the product: criteria, filters, a sheet's due date.

A typed year 0001 or 9999 is a slip of the keyboard, not a date of the book, and beyond these days
a day's local midnight may be no datetime at all (9999-12-31's next day); nothing a lender does
falls outside them. One range and one message, so every screen, API and service says the same."""

from __future__ import annotations

import datetime as dt

EARLIEST_DAY, LATEST_DAY = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
DAY_RANGE_MESSAGE = f"Give a date from {EARLIEST_DAY:%Y-%m-%d} to {LATEST_DAY:%Y-%m-%d}."


def day_in_range(day: dt.date) -> bool:
    return EARLIEST_DAY <= day <= LATEST_DAY
