"""The sandbox's state on disk: files and batches kept in an sqlite file, so that a sandbox job
outlives the process that started it.

``polybatch run --sandbox`` serves an engine backed by a :class:`SandboxStore` under
``POLYBATCH_HOME/sandbox/``; ``resume``, ``status``, ``cancel`` and ``results`` in another process
start a sandbox on the same store and find the job's batches as they were (their lifecycle is
computed from wall-clock times, so a batch went on "running" while no process served it).

Each file and each batch is one row (a pickle: the engine's objects are opaque provider payloads),
written before the response of the request that changed it is sent: what a client was told is on
disk. Processes serving different jobs touch different rows. A batch's outcomes are all computed
before it is written (its handler, a closure over the provider's routes, is not kept), so a
restored batch answers as the original would have. The file lives in the user's own private home
(mode 0600); it is the sandbox's and nobody else's to read.

What a plugin keeps on its route object rather than in the engine (Bedrock's job names, Vertex's
bucket objects, Mistral's file kinds, Gemini's upload sessions) is not kept: those providers'
sandbox jobs resume from another process only as far as the engine's state carries them.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import SandboxEngine
    from .objects import SandboxBatch

STATE_FILE = "state.sqlite"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS state (kind TEXT, key TEXT, blob BLOB, PRIMARY KEY (kind, key))"
)


def _restored_handler(request: Any) -> Any:
    raise RuntimeError(
        "sandbox: this batch was restored from disk without the outcome of this request"
    )


class SandboxStore:
    """Rows of a sandbox engine's files, batches and counters in ``directory/state.sqlite``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE
        #: what this process last read or wrote, per row: only changed rows are written again
        self._saved: dict[tuple[str, str], bytes] = {}

    def _connect(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute(_SCHEMA)
        return conn

    def load(self, engine: SandboxEngine) -> None:
        """Fill ``engine`` with the stored files, batches and counters."""
        from .objects import SandboxBatch

        conn = self._connect()
        try:
            rows = conn.execute("SELECT kind, key, blob FROM state").fetchall()
        finally:
            conn.close()
        for kind, key, blob in rows:
            self._saved[(kind, key)] = blob
            value = pickle.loads(blob)
            if kind == "file":
                engine.files[key] = value
            elif kind == "batch":
                batch = SandboxBatch.__new__(SandboxBatch)
                batch.__dict__.update(value, handler=_restored_handler)
                engine.batches[key] = batch
            elif kind == "meta":
                engine.attempts.update(value["attempts"])
                engine.restore_counters(value["counters"])

    def save(self, engine: SandboxEngine) -> None:
        """Write the rows of ``engine`` that changed since the last load or save (called with the
        engine's lock held)."""
        rows: dict[tuple[str, str], bytes] = {}
        for key, f in engine.files.items():
            rows[("file", key)] = pickle.dumps(f)
        for key, b in engine.batches.items():
            rows[("batch", key)] = pickle.dumps(_batch_state(b))
        rows[("meta", "")] = pickle.dumps(
            {"attempts": engine.attempts, "counters": engine.counters()}
        )
        changed = [(k, v) for k, v in rows.items() if self._saved.get(k) != v]
        gone = [k for k in self._saved if k not in rows]
        if not changed and not gone:
            return
        conn = self._connect()
        try:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO state (kind, key, blob) VALUES (?, ?, ?)",
                    [(kind, key, blob) for (kind, key), blob in changed],
                )
                conn.executemany("DELETE FROM state WHERE kind = ? AND key = ?", gone)
        finally:
            conn.close()
        for k in gone:
            del self._saved[k]
        self._saved.update(changed)


def _batch_state(batch: SandboxBatch) -> dict[str, Any]:
    """What is kept of a batch: every field but its handler, with every outcome computed."""
    if batch.errors is None:  # a batch that failed validation runs nothing
        for i in range(len(batch.requests)):
            batch.outcome(i)
    return {k: v for k, v in vars(batch).items() if k != "handler"}
