"""The local ledger: jobs, their chunks (provider batches) and every side effect, in SQLite.

Each side effect is recorded before it happens and again after, so a process that dies at any point
can be resumed without submitting anything twice. The database holds no secrets.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import config as _config
from ..errors import ConfigError, JobError
from .access import (
    LOCK_WAIT_SECONDS,
    ReadOnlyLedgerError,
    open_readonly,
    private_file,
    use_wal,
    writable,
)
from .rows import CHUNK_MIGRATIONS, SCHEMA
from .rows import CHUNK_STATES as CHUNK_STATES
from .rows import FINAL_STATES as FINAL_STATES
from .rows import ChunkRow as ChunkRow
from .rows import ChunkState as ChunkState
from .rows import JobRow as JobRow
from .rows import JobState as JobState


class Ledger:
    """A SQLite ledger. Safe to share between threads of one process; WAL for other processes.

    Where the ledger cannot be written (a read-only POLYBATCH_HOME), it opens read-only: reading
    jobs works (``list``, ``status --no-refresh``, ``results``, ``usage``), and anything that
    writes raises :class:`ReadOnlyLedgerError`, one line naming the ledger.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        #: True when opened read-only (nothing is created, migrated or written)
        self.readonly = self.path.exists() and not writable(self.path)
        if self.readonly:
            self._conn()
            return
        private_file(self.path)
        # executescript manages its own transaction (it commits first), so it runs outside _tx
        self._conn().executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add what later versions added to an older ledger (it stays readable as it was)."""
        db = self._conn()
        have = {r["name"] for r in db.execute("PRAGMA table_info(chunks)")}
        for name, decl in CHUNK_MIGRATIONS.items():
            if name not in have:
                try:
                    db.execute(f"ALTER TABLE chunks ADD COLUMN {name} {decl}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None and self.readonly:
            conn = open_readonly(self.path, LOCK_WAIT_SECONDS)
            self._local.conn = conn
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
            conn.row_factory = sqlite3.Row
            use_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def require_writable(self) -> None:
        """Raise ReadOnlyLedgerError if this ledger was opened read-only."""
        if self.readonly:
            raise ReadOnlyLedgerError(
                f"{self.path} is read-only: this command writes to the ledger "
                "(list, status --no-refresh, results and usage only read it)"
            )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.require_writable()
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- jobs ------------------------------------------------------------------------------
    def add_job(self, job: JobRow, chunks: list[ChunkRow]) -> None:
        """Record a planned job and its chunks in one transaction."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    job.id,
                    job.created_at,
                    job.updated_at,
                    job.provider,
                    job.model,
                    job.state,
                    job.n_items,
                    job.input_path,
                    job.results_path,
                    json.dumps(job.options),
                ),
            )
            for c in chunks:
                self._insert_chunk(db, c)
            db.execute(
                "INSERT INTO events VALUES (?,?,?,?,?)",
                (job.id, time.time(), None, "planned", f"{len(chunks)} chunks"),
            )

    def add_chunks(self, chunks: list[ChunkRow]) -> None:
        """Append chunks (a retry round) to an existing job."""
        with self._tx() as db:
            for c in chunks:
                self._insert_chunk(db, c)

    @staticmethod
    def _insert_chunk(db: sqlite3.Connection, c: ChunkRow) -> None:
        data = c.model_dump()
        cols = ", ".join(data)
        marks = ", ".join("?" * len(data))
        db.execute(f"INSERT INTO chunks ({cols}) VALUES ({marks})", tuple(data.values()))

    def get_job(self, job_id: str) -> JobRow | None:
        """A job by id, or None."""
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def find_jobs(self, prefix: str) -> list[JobRow]:
        """Jobs whose id starts with ``prefix`` (so users can type a short id)."""
        rows = self._conn().execute(
            "SELECT * FROM jobs WHERE id LIKE ? ORDER BY created_at", (prefix + "%",)
        )
        return [_job(r) for r in rows]

    def job_by_prefix(self, job_id: str) -> JobRow:
        """The job ``job_id`` names: its id, its name, or a unique id prefix; a JobError saying
        there is none, or listing the jobs an ambiguous name or prefix matches."""
        row = self.get_job(job_id)
        if row is not None:
            return row
        named = self._conn().execute(
            "SELECT * FROM jobs WHERE json_extract(options, '$.name') = ? ORDER BY created_at",
            (job_id,),
        )
        matches = [_job(r) for r in named] or self.find_jobs(job_id)
        if not matches:
            raise JobError(f"no job matching {job_id!r} in {self.path}")
        if len(matches) > 1:
            shown = ", ".join(m.id for m in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise JobError(
                f"{len(matches)} jobs match {job_id!r}: {shown}{more}; give more of the id"
            )
        return matches[0]

    def list_jobs(self, *, since: float | None = None) -> list[JobRow]:
        """All jobs, newest first."""
        rows = self._conn().execute(
            "SELECT * FROM jobs WHERE created_at >= ? ORDER BY created_at DESC", (since or 0,)
        )
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set fields of a job."""
        if "options" in fields:
            fields["options"] = json.dumps(fields["options"])
        fields["updated_at"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    # -- chunks ----------------------------------------------------------------------------
    def chunks(self, job_id: str) -> list[ChunkRow]:
        """A job's chunks in order."""
        rows = self._conn().execute("SELECT * FROM chunks WHERE job_id = ? ORDER BY idx", (job_id,))
        return [ChunkRow(**dict(r)) for r in rows]

    def update_chunk(
        self,
        job_id: str,
        idx: int,
        *,
        event: str | None = None,
        extra: dict[str, Any] | None = None,
        add: ChunkRow | None = None,
        **fields: Any,
    ) -> None:
        """Set fields of a chunk and, with ``event``, log the side effect in the same transaction
        (``extra``: more of the event's detail; ``add``: a chunk added, a half of this one)."""
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            if add is not None:
                self._insert_chunk(db, add)
            if fields:
                db.execute(
                    f"UPDATE chunks SET {cols} WHERE job_id = ? AND idx = ?",
                    (*fields.values(), job_id, idx),
                )
            if event:
                detail = {
                    k: v for k, v in fields.items() if k in ("batch_id", "state", "batch_state")
                } | (extra or {})
                db.execute(
                    "INSERT INTO events VALUES (?,?,?,?,?)",
                    (job_id, time.time(), idx, event, json.dumps(detail)),
                )
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))

    # -- tallies ---------------------------------------------------------------------------
    def job_tally(self, job_id: str, round_: int) -> str | None:
        """The tally (JSON) of a job's merged results as of round ``round_``, if recorded."""
        row = (
            self._conn()
            .execute(
                "SELECT tally FROM job_tallies WHERE job_id = ? AND round = ?", (job_id, round_)
            )
            .fetchone()
        )
        return None if row is None else str(row["tally"])

    def set_job_tally(self, job_id: str, round_: int, tally: str) -> None:
        """Record the tally (JSON) of a job's merged results as of round ``round_``."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO job_tallies VALUES (?,?,?)", (job_id, round_, tally))

    def first_event_at(self, job_id: str, chunk: int, kind: str) -> float | None:
        """When a chunk's first ``kind`` event was logged (its first create attempt, say)."""
        row = (
            self._conn()
            .execute(
                "SELECT MIN(ts) AS ts FROM events WHERE job_id = ? AND chunk = ? AND kind = ?",
                (job_id, chunk, kind),
            )
            .fetchone()
        )
        return None if row is None or row["ts"] is None else float(row["ts"])

    def claimed_batches(self, provider: str, batch_ids: list[str]) -> set[str]:
        """Which of these batch ids a chunk of some job on ``provider`` already holds, or held
        before the provider refused it for a full queue (never a chunk's batch again)."""
        if not batch_ids:
            return set()
        marks = ",".join("?" * len(batch_ids))
        rows = self._conn().execute(
            "SELECT c.batch_id AS id FROM chunks c JOIN jobs j ON j.id = c.job_id"
            f" WHERE j.provider = ? AND c.batch_id IN ({marks})"
            " UNION SELECT json_extract(e.detail, '$.refused_batch') AS id FROM events e"
            " JOIN jobs j ON j.id = e.job_id WHERE j.provider = ? AND e.kind = 'queue-full'"
            f" AND json_extract(e.detail, '$.refused_batch') IN ({marks})",
            (provider, *batch_ids, provider, *batch_ids),
        )
        return {str(r["id"]) for r in rows}

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The side-effect log of a job, oldest first."""
        rows = self._conn().execute(
            "SELECT ts, chunk, kind, detail FROM events WHERE job_id = ? ORDER BY rowid", (job_id,)
        )
        return [dict(r) for r in rows]


def _job(row: sqlite3.Row) -> JobRow:
    data = dict(row)
    data["options"] = json.loads(data["options"] or "{}")
    return JobRow(**data)


def open_ledger(home: str | os.PathLike[str] | None = None) -> Ledger:
    """The ledger under ``home`` (a path or a string; default: ``polybatch.config.home()``)."""
    if home is None:
        return Ledger(_config.home() / "ledger.sqlite3")
    if not isinstance(home, str | os.PathLike):
        raise ConfigError(f"home: expected a path or a string, got {type(home).__name__} {home!r}")
    return Ledger(Path(home) / "ledger.sqlite3")
