"""Set-based writes behind one small seam: new primary keys, many rows inserted, many rows updated
by id. PostgreSQL takes its fast paths (sequence values without a table lock, COPY, one UPDATE ...
FROM (VALUES ...) per batch); SQLite prepared statements run for every row (executemany), inside
the caller's transaction, which on SQLite holds the one write lock from its start (transactions
begin IMMEDIATE, settings). Values are Python values (Decimal, date, str, int, bool, None);
`stamp` turns an aware datetime into what each database stores."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from django.db import connection as default_connection
from django.db import transaction


def stamp(value: dt.datetime, connection=None):
    """An aware datetime as a bulk-written column value: as it is on PostgreSQL, naive UTC text
    on SQLite (as Django stores it there)."""
    conn = connection or default_connection
    if conn.vendor == "postgresql":
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def new_ids(model, count: int, connection=None) -> list[int]:
    """`count` primary keys for rows inserted with explicit ids, inside the caller's transaction.
    PostgreSQL: from the table's own sequence (no table lock: other writers keep taking theirs).
    SQLite: past the highest used (the transaction holds the write lock, so nobody else inserts)."""
    conn = connection or default_connection
    table, pk = model._meta.db_table, model._meta.pk.column
    if count <= 0:
        return []
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)", [table, pk, count])
            return [row[0] for row in cursor.fetchall()]
        qn = conn.ops.quote_name
        cursor.execute(f"SELECT MAX({qn(pk)}) FROM {qn(table)}")
        highest = cursor.fetchone()[0] or 0
        cursor.execute("SELECT MAX(seq) FROM sqlite_sequence WHERE name = %s", [table])
        first = max(highest, cursor.fetchone()[0] or 0) + 1
        return list(range(first, first + count))


def insert_rows(model, columns: Sequence[str], rows: Sequence[tuple], connection=None) -> None:
    """Insert `rows` (tuples in `columns` order) into `model`'s table: COPY on PostgreSQL, one
    prepared INSERT per row elsewhere. Constraints hold as for any insert: a duplicate raises
    IntegrityError and the caller's transaction rolls back."""
    conn = connection or default_connection
    if not rows:
        return
    qn = conn.ops.quote_name
    table = qn(model._meta.db_table)
    names = ", ".join(qn(c) for c in columns)
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})", rows)


def update_rows(model, fields: Sequence[str], rows: Sequence[tuple], *, casts: Sequence[str], connection=None) -> None:
    """Set `fields` on each row by id; `rows` are (id, value, ...) in `fields` order, `casts` the
    PostgreSQL type of each field. PostgreSQL: the rows are copied into a temporary table (COPY)
    and the table is updated from it in one statement (a VALUES list of thousands of rows costs
    more to send, parse and plan than the update itself); SQLite: one prepared UPDATE per row."""
    conn = connection or default_connection
    if not rows:
        return
    qn = conn.ops.quote_name
    table = qn(model._meta.db_table)
    pk = qn(model._meta.pk.column)
    with conn.cursor() as cursor:
        if conn.vendor != "postgresql":
            sets = ", ".join(f"{qn(f)} = %s" for f in fields)
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {pk} = %s", [(*row[1:], row[0]) for row in rows])
            return
    stage = f"imali_update_{model._meta.db_table}"
    columns = [("id", "bigint"), *((f"v_{f}", cast) for f, cast in zip(fields, casts, strict=True))]
    # Its own savepoint: the staged table lives until the end of the caller's transaction (or of
    # this block, in autocommit) and is dropped here, so the same table can be staged again.
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        temp_table(stage, columns, rows, connection=conn)
        sets = ", ".join(f"{qn(f)} = s.{qn('v_' + f)}" for f in fields)
        cursor.execute(f"UPDATE {table} SET {sets} FROM {qn(stage)} s WHERE {table}.{pk} = s.id")
        cursor.execute(f"DROP TABLE {qn(stage)}")


CENT_EXPONENT = -2


def select_sql(columns: Sequence[tuple[str, str]], connection=None) -> str:
    """The select list for `select_rows`: (column expression, kind) pairs, kind "money" (two
    places), "date" or anything else (as the driver gives it). On SQLite money is read as whole
    cents (its numbers are binary floating point), so no value is ever a float."""
    conn = connection or default_connection
    if conn.vendor == "postgresql":
        return ", ".join(column for column, _ in columns)
    # Dates as text, parsed by date.fromisoformat: Django's own parsing of date columns is a
    # regular expression per value.
    return ", ".join(f"CAST(ROUND({column} * 100) AS INTEGER)" if kind == "money" else f"({column} || '')" if kind == "date"
                     else column for column, kind in columns)


_NO_CENTS = Decimal("0.00")


def _cents(value):
    # Most paid columns of open instalments are nought: one shared (immutable) value for those.
    if value == 0:
        return _NO_CENTS
    return None if value is None else Decimal(value).scaleb(CENT_EXPONENT)


def _date(value):
    # Django's SQLite connection parses declared date columns itself; text only from expressions.
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def select_rows(sql: str, params: Sequence, kinds: Sequence[str], connection=None) -> list[tuple]:
    """Run a query whose select list came from `select_sql` and return its rows with money as
    Decimal (two places) and dates as dates on either database, without the ORM's per-value
    machinery (a day's collections reads hundreds of thousands of values)."""
    conn = connection or default_connection
    with conn.cursor() as cursor:
        cursor.execute(sql, list(params))
        fetched = cursor.fetchall()
    if conn.vendor == "postgresql":
        return fetched
    converters = [(k, _cents if kind == "money" else _date) for k, kind in enumerate(kinds) if kind in ("money", "date")]
    if not converters:
        return fetched
    out = []
    for row in fetched:
        row = list(row)
        for k, convert in converters:
            row[k] = convert(row[k])
        out.append(tuple(row))
    return out


def placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


# -- money in SQL, in whole cents ------------------------------------------------------------------
# Set-based statements that add and compare money do it in integer cents on both databases: SQLite
# keeps a decimal column as a binary floating point number, so its own arithmetic on money would
# not be exact; a value read as cents (ROUND(x * 100)) and written back as cents / 100 is.
def cents_sql(column: str, connection=None) -> str:
    """`column` (a two-place money column or expression) as whole cents, an integer."""
    conn = connection or default_connection
    if conn.vendor == "postgresql":
        return f"CAST(({column}) * 100 AS bigint)"
    return f"CAST(ROUND(({column}) * 100) AS INTEGER)"


def money_sql(cents: str, connection=None) -> str:
    """Whole cents (an integer expression) as the money value a column stores."""
    conn = connection or default_connection
    if conn.vendor == "postgresql":
        return f"CAST(({cents}) AS numeric) / 100"
    return f"(({cents}) / 100.0)"


def least_sql(*expressions: str, connection=None) -> str:
    conn = connection or default_connection
    return f"{'LEAST' if conn.vendor == 'postgresql' else 'MIN'}({', '.join(expressions)})"


def greatest_sql(*expressions: str, connection=None) -> str:
    conn = connection or default_connection
    return f"{'GREATEST' if conn.vendor == 'postgresql' else 'MAX'}({', '.join(expressions)})"


def temp_table(name: str, columns: Sequence[tuple[str, str]], rows: Sequence[tuple], connection=None) -> None:
    """A temporary table `name` of (column, PostgreSQL type) `columns` holding `rows`, for a
    set-based statement to join; made afresh (inside the caller's transaction: dropped on commit on
    PostgreSQL; the caller drops it on SQLite, `temp_table_drop`). COPY on PostgreSQL, executemany
    on SQLite."""
    conn = connection or default_connection
    qn = conn.ops.quote_name
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(f"DROP TABLE IF EXISTS {qn(name)}")
            cursor.execute(f"CREATE TEMPORARY TABLE {qn(name)} ({', '.join(f'{qn(c)} {t}' for c, t in columns)}) "
                           f"ON COMMIT DROP")
            if rows:
                with cursor.cursor.copy(f"COPY {qn(name)} ({', '.join(qn(c) for c, _ in columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            cursor.execute(f"ANALYZE {qn(name)}")
            return
        cursor.execute(f"DROP TABLE IF EXISTS temp.{qn(name)}")
        cursor.execute(f"CREATE TEMP TABLE {qn(name)} ({', '.join(qn(c) for c, _ in columns)})")
        if rows:
            cursor.executemany(f"INSERT INTO temp.{qn(name)} VALUES ({placeholders(len(columns))})", rows)


def temp_table_drop(name: str, connection=None) -> None:
    conn = connection or default_connection
    with conn.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {'temp.' if conn.vendor != 'postgresql' else ''}{conn.ops.quote_name(name)}")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a set-based run that makes hundreds of thousands
    of short-lived tuples and no reference cycles: each collection walks every live object in the
    process, and a large run triggers hundreds of them (a tenth of a day's collections import).
    Memory is still freed as it is released (reference counting); the collector's state is put back."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def among(column: str, values: Sequence, connection=None) -> tuple[str, list]:
    """`column` is one of `values` (all int or all str) as (SQL, parameters): one array parameter on
    PostgreSQL (`= ANY`: planned once, whatever the count; an IN list of thousands of parameters is
    planned value by value), an IN list on SQLite."""
    conn = connection or default_connection
    if conn.vendor == "postgresql":
        kind = "bigint" if values and isinstance(values[0], int) else "text"
        return f"{column} = ANY(CAST(%s AS {kind}[]))", [list(values)]
    return f"{column} IN ({placeholders(len(values))})", list(values)
