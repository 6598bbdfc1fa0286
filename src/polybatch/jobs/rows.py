"""What the ledger stores: its SQL schema (and the columns later versions added), and the job and
chunk rows as :mod:`.ledger` reads them back."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    input_path TEXT,
    results_path TEXT,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    idx INTEGER NOT NULL,
    round INTEGER NOT NULL DEFAULT 0,
    items_file TEXT NOT NULL,
    offset INTEGER NOT NULL,
    start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL,
    batch_id TEXT,
    input_file_id TEXT,
    batch_state TEXT,
    submitted_at REAL,
    ended_at REAL,
    n_ok INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    live_ok INTEGER NOT NULL DEFAULT 0,
    live_failed INTEGER NOT NULL DEFAULT 0,
    tally TEXT,
    tokens INTEGER NOT NULL DEFAULT 0,
    queue_full_at REAL,
    output_file_id TEXT,
    error_file_id TEXT,
    PRIMARY KEY (job_id, idx)
);
-- added after the first release: IF NOT EXISTS adds it to an older ledger when it is opened
CREATE TABLE IF NOT EXISTS job_tallies (
    job_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    tally TEXT NOT NULL,
    PRIMARY KEY (job_id, round)
);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    ts REAL NOT NULL,
    chunk INTEGER,
    kind TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id);
-- one job, one owner (see lease.py); added in 0.3, to an older ledger on open as above
CREATE TABLE IF NOT EXISTS leases (
    job_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
-- webhook deliveries acted on, by webhook-id (replays change nothing); added in 0.3 (see hooks.py)
CREATE TABLE IF NOT EXISTS webhooks_seen (
    webhook_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""

#: a job: planned -> running -> completed, or -> cancelling -> cancelled
#: "abandoned": given up by the user (``polybatch forget``), never final, nothing more is sent
JobState = Literal["planned", "running", "cancelling", "completed", "cancelled", "abandoned"]
#: a chunk: planned -> submitting -> submitted -> collected (a queued chunk of a cancelled job
#: goes straight to collected, its items cancelled)
ChunkState = Literal["planned", "submitting", "submitted", "collected"]

#: columns added to ``chunks`` after its first release: a ledger without them gets them on open
#: (the provider's progress from the last poll; the chunk's results tallied as collected, NULL
#: where they were collected before tallies existed: :mod:`.tally` recomputes those once; its
#: estimated prompt tokens, 0 in an older ledger: admitted whatever the queue limit; when the
#: provider last refused it for a full queue)
CHUNK_MIGRATIONS = {
    "live_ok": "INTEGER NOT NULL DEFAULT 0",
    "live_failed": "INTEGER NOT NULL DEFAULT 0",
    "tally": "TEXT",
    "tokens": "INTEGER NOT NULL DEFAULT 0",
    "queue_full_at": "REAL",
    "output_file_id": "TEXT",
    "error_file_id": "TEXT",
}

#: job states in which the results are final
FINAL_STATES: tuple[JobState, ...] = ("completed", "cancelled")
CHUNK_STATES: tuple[ChunkState, ...] = get_args(ChunkState)


class JobRow(BaseModel):
    """One job as the ledger holds it."""

    id: str
    created_at: float
    updated_at: float
    provider: str
    model: str
    state: JobState
    n_items: int
    input_path: str | None
    results_path: str | None
    options: dict[str, Any]


class ChunkRow(BaseModel):
    """One chunk: a contiguous run of a job's items sent as one provider batch."""

    job_id: str
    idx: int
    round: int
    items_file: str
    offset: int
    start: int
    count: int
    nbytes: int
    model: str
    state: ChunkState = "planned"
    batch_id: str | None = None
    input_file_id: str | None = None
    batch_state: str | None = None
    submitted_at: float | None = None
    ended_at: float | None = None
    n_ok: int = 0
    n_failed: int = 0
    message: str | None = None
    #: items done at the provider (succeeded, failed) as of the last poll, while it runs
    live_ok: int = 0
    live_failed: int = 0
    #: the chunk's results tallied (:class:`~polybatch.jobs.tally.Tally` JSON), once collected
    tally: str | None = None
    #: estimated prompt tokens: what the chunk adds to the provider's queue for its model
    tokens: int = 0
    #: when the provider last refused the chunk for a full queue (it is "planned" again and
    #: waits for queue room); None once it is accepted
    queue_full_at: float | None = None
    #: the provider's result files, as its batch named them at the last poll (see BatchStatus)
    output_file_id: str | None = None
    error_file_id: str | None = None
