"""Where a job stands: :class:`JobStatus`, and its counts per custom_id, latest outcome."""

from __future__ import annotations

from dataclasses import dataclass

from .files import JobFiles
from .ledger import FINAL_STATES, ChunkRow, JobRow, Ledger
from .tally import round_tally


@dataclass
class JobStatus:
    """Where a job stands."""

    job_id: str
    state: str
    provider: str
    model: str
    total: int
    succeeded: int
    failed: int
    chunks: dict[str, int]
    #: the job's name, if it was given one
    name: str | None = None

    @property
    def done(self) -> bool:
        """True once results are final."""
        return self.state in FINAL_STATES


def request_counts(
    ledger: Ledger, row: JobRow, files: JobFiles, chunks: list[ChunkRow]
) -> tuple[int, int]:
    """(succeeded, failed) per custom_id, latest outcome (see :meth:`Job.status <polybatch.jobs.handle.Job.status>`)."""
    merged = merged_round(row, files, chunks)
    if merged is None:
        ok = failed = 0
        for c in chunks:
            if c.round == 0:
                done = c.state == "collected"
                ok += c.n_ok if done else c.live_ok
                failed += c.n_failed if done else c.live_failed
        return ok, failed
    base = round_tally(ledger, row, merged, chunks)
    # a later round's items all failed before: each success moves one from failed to ok
    moved = sum(c.n_ok if c.state == "collected" else c.live_ok for c in chunks if c.round > merged)
    return base.succeeded + moved, base.failed - moved


def merged_round(row: JobRow, files: JobFiles, chunks: list[ChunkRow]) -> int | None:
    """The last round whose results are merged (every chunk collected, its file written)."""
    merged = None
    for round_ in sorted({c.round for c in chunks}):
        if any(c.state != "collected" for c in chunks if c.round == round_):
            break
        if row.state not in FINAL_STATES and not (files.round_results(round_).exists()):
            break
        merged = round_
    return merged
