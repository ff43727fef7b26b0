"""benchmarks/_book.py: a bench's private copy of a kept SQLite book holds everything committed to
it, the rows still in its write-ahead log too, and leaves the kept file as it was."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _book  # noqa: E402 - the benchmarks' book set-up, not a package


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_copy_of_a_kept_sqlite_book_is_whole_and_leaves_it_untouched(tmp_path):
    kept = tmp_path / "kept.sqlite3"
    writer = sqlite3.connect(kept)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # rows stay in the -wal file, as in a book being used
    writer.execute("CREATE TABLE client (id INTEGER PRIMARY KEY, name TEXT)")
    writer.executemany("INSERT INTO client (name) VALUES (?)", [(f"client {n}",) for n in range(500)])
    writer.commit()
    # The book's data: the file and its write-ahead log (the -shm index holds readers' marks, no data).
    before = {p.name: _digest(p) for p in tmp_path.iterdir() if not p.name.endswith("-shm")}
    assert (tmp_path / "kept.sqlite3-wal").stat().st_size > 0
    copy = tmp_path / "copies" / "book.sqlite3"
    copy.parent.mkdir()
    _book._copy_sqlite(kept, copy)
    with sqlite3.connect(copy) as reader:
        assert reader.execute("SELECT COUNT(*), MAX(name) FROM client").fetchone() == (500, "client 99")
        reader.execute("DELETE FROM client")  # the bench changes its copy...
    after = {p.name: _digest(p) for p in tmp_path.iterdir() if p.is_file() and not p.name.endswith("-shm")}
    assert after == before  # byte for byte: the copy's read never checkpoints the log into the file
    writer.close()
    with sqlite3.connect(kept) as again:  # ...never the kept book
        assert again.execute("SELECT COUNT(*) FROM client").fetchone() == (500,)


def test_a_missing_or_badly_named_book_is_refused_with_the_reason(tmp_path):
    with pytest.raises(SystemExit, match="is missing"):
        _book._copy_sqlite(tmp_path / "nothing.sqlite3", tmp_path / "copy.sqlite3")
    with pytest.raises(SystemExit, match="lower-case letters"):
        _book._check_name("Book1M; DROP DATABASE x", "--from-book")
