"""Counts and usage totals of results, accumulated as results are written, kept in the ledger.

A :class:`Tally` holds, for a set of results, how many have each status and their token usage
summed per bucket (provider, model, batch date, succeeded, used any tokens): all that the outcome
line, ``Job.status()``, ``Job.usage()`` and the usage tables need, in memory bounded by the number
of buckets, never by the number of results.

The driver tallies each chunk as it collects it and each merged round as it writes it; both are
stored in the ledger (``chunks.tally``, ``job_tallies``). A ledger written before tallies existed,
or a crash between writing a file and recording its tally, is handled by :func:`tally_lines`:
the file is read once, streaming, and the tally recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from ..items import BatchResult, Usage
from ..pricing import UsageRecord
from .files import JobFiles, ensure_final
from .ledger import ChunkRow, JobRow, Ledger

#: the usage fields summed per bucket, in the order a bucket's list holds them (after ``n``)
USAGE_FIELDS = tuple(Usage.model_fields)

#: provider, model, batch date (ISO), succeeded, used tokens
BucketKey = tuple[str, str, str, bool, bool]


def day_of(ts: float | None, fallback: float) -> str:
    """The UTC date (ISO) of a batch created at ``ts`` (prices in force that day apply)."""
    return datetime.fromtimestamp(ts or fallback, UTC).date().isoformat()


@dataclass
class Tally:
    """Statuses counted and usage summed over some results."""

    statuses: Counter[str] = field(default_factory=Counter)
    #: bucket -> [requests, *USAGE_FIELDS sums]
    usage: dict[BucketKey, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """How many results."""
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        """How many succeeded."""
        return self.statuses.get("succeeded", 0)

    @property
    def failed(self) -> int:
        """How many did not succeed."""
        return self.total - self.succeeded

    def add(
        self,
        status: str,
        usage: dict[str, int] | Usage | None,
        provider: str,
        model: str,
        day: str,
        sign: int = 1,
    ) -> None:
        """Count one result (``sign=-1``: take one out, when a later round replaces it)."""
        self.statuses[status] += sign
        if isinstance(usage, Usage):
            values = [getattr(usage, f) for f in USAGE_FIELDS]
        else:
            values = [int((usage or {}).get(f, 0)) for f in USAGE_FIELDS]
        used = any(values[:5])  # any input or output token (reasoning is part of output)
        key = (provider, model, day, status == "succeeded", used)
        bucket = self.usage.get(key)
        if bucket is None:
            bucket = self.usage[key] = [0] * (1 + len(USAGE_FIELDS))
        bucket[0] += sign
        for i, v in enumerate(values, 1):
            bucket[i] += sign * v

    def add_result(self, r: BatchResult, provider: str, model: str, day: str) -> None:
        """Count a result; ``provider``/``model`` fill in what it lacks."""
        self.add(r.status, r.usage, r.provider or provider, r.model or model, day)

    def merge(self, other: Tally, sign: int = 1) -> None:
        """Add (or, with ``sign=-1``, take out) another tally."""
        for status, n in other.statuses.items():
            self.statuses[status] += sign * n
        for key, values in other.usage.items():
            bucket = self.usage.setdefault(key, [0] * len(values))
            for i, v in enumerate(values):
                bucket[i] += sign * v
        self._prune()

    def _prune(self) -> None:
        for status in [s for s, n in self.statuses.items() if n == 0]:
            del self.statuses[status]
        for key in [k for k, b in self.usage.items() if not any(b)]:
            del self.usage[key]

    def total_usage(self) -> Usage:
        """All the usage together."""
        sums = [0] * len(USAGE_FIELDS)
        for bucket in self.usage.values():
            for i, v in enumerate(bucket[1:]):
                sums[i] += v
        return Usage(**dict(zip(USAGE_FIELDS, sums, strict=True)))

    def records(self, job_id: str) -> Iterator[tuple[int, UsageRecord]]:
        """Each bucket as (requests, one usage record holding the bucket's summed usage)."""
        for (provider, model, day, ok, _used), bucket in sorted(self.usage.items()):
            if bucket[0] == 0:
                continue
            usage = Usage(**dict(zip(USAGE_FIELDS, bucket[1:], strict=True)))
            record = UsageRecord(
                provider=provider or None,
                model=model or None,
                ok=ok,
                usage=usage,
                job_id=job_id,
                created=date.fromisoformat(day),
            )
            yield bucket[0], record

    # -- storage ----------------------------------------------------------------------------
    def dumps(self) -> str:
        """As JSON, for the ledger."""
        return json.dumps(
            {
                "statuses": dict(sorted(self.statuses.items())),
                "usage": [[*key, *values] for key, values in sorted(self.usage.items())],
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Tally:
        """From :meth:`dumps`'s JSON."""
        data: dict[str, Any] = json.loads(text)
        tally = cls(statuses=Counter(data.get("statuses", {})))
        for row in data.get("usage", []):
            provider, model, day, ok, used, *values = row
            tally.usage[(provider, model, day, bool(ok), bool(used))] = [int(v) for v in values]
        return tally


def tally_lines(
    lines: Iterable[str | bytes], provider: str, model: str, day: dict[str, str], default_day: str
) -> Tally:
    """The tally of result lines (a results file), streaming; ``day`` maps batch ids to dates."""
    tally = Tally()
    for line in lines:
        add_line(tally, line, provider, model, day, default_day)
    return tally


def add_line(
    tally: Tally,
    line: str | bytes,
    provider: str,
    model: str,
    day: dict[str, str],
    default_day: str,
    sign: int = 1,
) -> None:
    """Count (or, with ``sign=-1``, take out) one result line of a results file."""
    r: dict[str, Any] = json.loads(line)
    tally.add(
        r["status"],
        r.get("usage"),
        r.get("provider") or provider,
        r.get("model") or model,
        day.get(r.get("batch_id") or "", default_day),
        sign,
    )


# -- a job's tallies, from the ledger (or its files, once) -------------------------------------


def batch_days(row: JobRow, chunks: Iterable[ChunkRow]) -> dict[str, str]:
    """The creation date of each provider batch of a job, by batch id."""
    return {c.batch_id: day_of(c.submitted_at, row.created_at) for c in chunks if c.batch_id}


def chunk_tally(ledger: Ledger, row: JobRow, c: ChunkRow, days: dict[str, str]) -> Tally:
    """A collected chunk's tally: as recorded, or read once from its results file."""
    if c.tally is not None:
        return Tally.loads(c.tally)
    path = JobFiles.of(ledger, row).chunk_results(c.idx)
    with path.open("rb") as fh:
        tally = tally_lines(fh, row.provider, row.model, days, day_of(None, row.created_at))
    if not ledger.readonly:  # kept for next time; a read-only ledger counts again
        ledger.update_chunk(row.id, c.idx, tally=tally.dumps())
    return tally


def round_tally(ledger: Ledger, row: JobRow, round_: int, chunks: Iterable[ChunkRow]) -> Tally:
    """The tally of a job's merged results as of round ``round_``: as recorded, or read once
    from the round's file (the final results file when only that is left)."""
    text = ledger.job_tally(row.id, round_)
    if text is not None:
        return Tally.loads(text)
    files = JobFiles.of(ledger, row)
    path = files.round_results(round_)
    if not path.exists():
        path = files.results_path
    with path.open("rb") as fh:
        tally = tally_lines(
            fh, row.provider, row.model, batch_days(row, chunks), day_of(None, row.created_at)
        )
    if not ledger.readonly:
        ledger.set_job_tally(row.id, round_, tally.dumps())
    return tally


def final_tally(ledger: Ledger, row: JobRow) -> Tally:
    """The tally of a finished job's final results (one per custom_id)."""
    ensure_final(row)
    chunks = ledger.chunks(row.id)
    return round_tally(ledger, row, max((c.round for c in chunks), default=0), chunks)
