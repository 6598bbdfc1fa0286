"""Where a job stands: :class:`JobStatus`, its counts per custom_id (latest outcome), and its
provider batches (:class:`BatchInfo`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

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
    #: planned chunks the provider refused for a full queue, waiting for room (see .queue)
    waiting_for_queue: int = 0
    #: the job's name, if it was given one
    name: str | None = None

    @property
    def done(self) -> bool:
        """True once results are final."""
        return self.state in FINAL_STATES


@dataclass(frozen=True)
class BatchInfo:
    """One provider batch of a job, as the ledger records it (:meth:`Job.batches
    <polybatch.jobs.handle.Job.batches>`): no provider call.

    ``chunk`` is the chunk's index in the job, ``round`` 0 for the first submission and 1, 2 ...
    for retry rounds; ``state`` the chunk's state in polybatch's lifecycle (``planned``,
    ``submitted``, ``collected``, ...) and ``batch_state`` the provider batch's state at the last
    poll. ``batch_id`` and ``input_file_id`` are None until the chunk is submitted.
    """

    chunk: int
    round: int
    state: str
    batch_id: str | None
    batch_state: str | None
    input_file_id: str | None
    #: the provider's output and error files (where its batches write files), once it names them
    output_file_id: str | None
    error_file_id: str | None
    model: str
    #: the items of the chunk: its first item's position (0-based) in the input, and how many
    start: int
    count: int

    @classmethod
    def of(cls, row: ChunkRow) -> BatchInfo:
        """The ledger's chunk row in these terms (the same names, but ``chunk`` for ``idx``)."""
        same = {f.name: getattr(row, f.name) for f in fields(cls) if f.name != "chunk"}
        return cls(chunk=row.idx, **same)


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
