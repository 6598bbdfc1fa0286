"""Where polybatch may write, and how: owner-only directories, a ledger opened read-only.

Every file polybatch writes is 0600 and every directory it creates 0700 (prompts and model output
are the user's data). A POLYBATCH_HOME the process cannot write (``chmod -R a-w``, a read-only
mount) still lets the reading commands read the ledger: it is opened read-only, and a command
that writes gets :class:`ReadOnlyLedgerError`, one line.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import suppress
from pathlib import Path

from ..errors import JobError


def private_dir(path: Path) -> Path:
    """Create the directory ``path`` (if needed) usable by its owner only (0700); missing
    parents are created too, with the default mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        path.mkdir(mode=0o700)
    return path


def writable(path: Path) -> bool:
    """Whether a ledger at ``path`` can be written: its directory (journal files live there) and
    the file itself, if it exists."""
    directory = path.parent if path.parent.exists() else None
    if directory is None:
        return True  # created on open
    if not os.access(directory, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


class ReadOnlyLedgerError(JobError):
    """A command that writes to the ledger, on a ledger polybatch may only read."""


def open_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``). A WAL ledger whose directory is read-only, with
    no ``-shm`` file left, cannot even be read that way (SQLite would create the file), so it is
    then opened ``immutable``: nothing can change it while its directory stays read-only."""
    uri = path.resolve().as_uri()
    for query in ("mode=ro", "mode=ro&immutable=1"):
        conn = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            if "immutable" in query:
                raise
            continue
        return conn
    raise AssertionError("unreachable")


def private_file(path: Path) -> None:
    """Create ``path`` (if needed) readable by its owner only."""
    private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


#: how long opening a ledger waits for another connection that holds it (as ``connect``'s timeout)
LOCK_WAIT_SECONDS = 30.0


def use_wal(conn: sqlite3.Connection) -> None:
    """Put the ledger in WAL mode (persistent: only the first opener of a new file changes it).

    Switching a database into WAL needs it to itself, and SQLite answers ``database is locked`` at
    once, without waiting the connection's busy timeout, while another connection (a thread or
    process opening the same new ledger) is in the middle of it; so the switch is retried.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.005
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
