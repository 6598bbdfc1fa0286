"""A job's directory: where its items, wire files and results live, merging rounds, publishing.

Everything here works from the ledger's rows alone (:class:`JobFiles.of`), without a
:class:`~polybatch.jobs.handle.Job`: the handle, the step driver and the cost tables all read the
same layout through it::

    <home>/jobs/<job id>/
        items.jsonl                 the job's items, defaults applied, in input order
        chunk-0003.wire.jsonl       a chunk encoded for its provider, until it is submitted
        retry-1.items.jsonl         the items of retry round 1 (a subset, in input order)
        results/chunk-0003.jsonl    one chunk's results, in its items' order
        results/round-1.jsonl       every item once, latest outcome wins, after round 1
        results.jsonl               the final results (unless the job names another path)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import overload

from ..errors import JobError
from ..items import BatchItem, BatchResult
from .access import private_dir
from .ledger import FINAL_STATES, ChunkRow, JobRow, Ledger
from .planner import ITEMS_FILE


def private_fd(path: Path, *, readable: bool = False) -> int:
    """Open ``path`` for writing, owner-only (results may hold sensitive model output)."""
    private_dir(path.parent)
    mode = os.O_RDWR if readable else os.O_WRONLY
    return os.open(path, mode | os.O_CREAT | os.O_TRUNC, 0o600)


def jobs_dir(ledger: Ledger) -> Path:
    """The directory holding every job directory of ``ledger``."""
    return ledger.path.parent / "jobs"


def ensure_final(row: JobRow) -> None:
    """Raise JobError unless the job's results are final."""
    if row.state not in FINAL_STATES:
        raise JobError(
            f"job {row.id} is {row.state}: results are not final yet (wait or resume it)"
        )


def retryable(r: BatchResult) -> bool:
    """Worth sending again: expired, cancelled, or an error the provider calls transient."""
    if r.ok:
        return False
    if r.status in ("expired", "cancelled"):
        return True
    return r.error is not None and r.error.retryable


def _custom_id(line: str) -> str:
    return str(json.loads(line)["custom_id"])


@dataclass(frozen=True)
class JobFiles:
    """The files of one job."""

    dir: Path
    results_path: Path

    @classmethod
    def of(cls, ledger: Ledger, row: JobRow) -> JobFiles:
        """The files of the job ``row`` of ``ledger``."""
        d = jobs_dir(ledger) / row.id
        return cls(d, Path(row.results_path) if row.results_path else d / "results.jsonl")

    @property
    def items_path(self) -> Path:
        """The job's items as submitted (defaults applied), in input order."""
        return self.dir / ITEMS_FILE

    def wire_path(self, idx: int) -> Path:
        """Chunk ``idx`` encoded for its provider, waiting to be uploaded."""
        return self.dir / f"chunk-{idx:04d}.wire.jsonl"

    def chunk_results(self, idx: int) -> Path:
        """Chunk ``idx``'s results, in its items' order."""
        return self.dir / "results" / f"chunk-{idx:04d}.jsonl"

    def round_results(self, round_: int) -> Path:
        """Every item of the job once, as of round ``round_``."""
        return self.dir / "results" / f"round-{round_}.jsonl"

    # -- merging, retrying, publishing ------------------------------------------------------
    def merge_round(
        self,
        round_: int,
        chunks: Sequence[ChunkRow],
        replaced: Callable[[str], None] | None = None,
    ) -> bool:
        """Write round-N.jsonl: every item of the job once, in input order, latest outcome wins.

        Round 0 is the chunks' results put in input order. A retry round's items are a subset,
        in input order too, so the previous round's file and this round's results are merged in
        one pass: memory stays bounded by one chunk's index, whatever the job's size. Each line
        of the previous round that a result of this round replaces is passed to ``replaced``.
        False if the file was already there (merged before a crash).
        """
        dest = self.round_results(round_)
        if dest.exists():
            return False
        tmp = dest.with_name(dest.name + ".part")
        with _removed_on_error(tmp), os.fdopen(private_fd(tmp), "w", encoding="utf-8") as out:
            fresh = self._round_in_order(round_, chunks)
            if round_ == 0:
                for line in fresh:
                    out.write(line)
            else:
                pending = next(fresh, None)
                with self.round_results(round_ - 1).open("r", encoding="utf-8") as prev:
                    for line in prev:
                        if pending is not None and _custom_id(pending) == _custom_id(line):
                            if replaced is not None:
                                replaced(line)
                            out.write(pending)
                            pending = next(fresh, None)
                        else:
                            out.write(line)
                if pending is not None:
                    raise JobError(
                        f"job {self.dir.name}: retry round {round_} holds results out of order"
                    )
        tmp.replace(dest)
        return True

    def _round_in_order(self, round_: int, chunks: Sequence[ChunkRow]) -> Iterator[str]:
        """One round's results as lines, in the order of that round's items file (by the
        chunks' first item: a chunk halved for a full queue has its second half numbered last)."""
        for c in sorted((c for c in chunks if c.round == round_), key=lambda c: c.start):
            with self.chunk_results(c.idx).open("r", encoding="utf-8") as fh:
                yield from fh

    def write_retry_items(self, round_: int) -> tuple[Path, int]:
        """The items of round ``round_``'s retryable failures, as round ``round_ + 1``'s items
        file, and how many there are (no file is left when there are none)."""
        path = self.dir / f"retry-{round_ + 1}.items.jsonl"
        n = 0
        with (
            os.fdopen(private_fd(path), "wb") as out,
            self.round_results(round_).open("r", encoding="utf-8") as results,
            self.items_path.open("rb") as items,
        ):
            # both files are in input order, one line per item: walk them side by side
            for line, item_line in zip(results, items, strict=True):
                if retryable(BatchResult.model_validate_json(line)):
                    out.write(item_line)
                    n += 1
        if n == 0:
            path.unlink()
        return path, n

    def publish(self, round_: int) -> None:
        """Copy the last round's merged results to the final results file, atomically."""
        copy_private(self.round_results(round_), self.results_path)

    # -- reading ----------------------------------------------------------------------------
    def results(self, status: str | None = None) -> Iterator[BatchResult]:
        """The final results (in input order), optionally only those of one status."""
        with self.results_path.open("r", encoding="utf-8") as fh:
            for line in fh:
                r = BatchResult.model_validate_json(line)
                if status is None or r.status == status or (status == "failed" and not r.ok):
                    yield r

    def requests(self, custom_ids: Iterable[str] | None = None) -> Iterator[BatchItem]:
        """The job's items as submitted, optionally only some ids."""
        wanted = set(custom_ids) if custom_ids is not None else None
        with self.items_path.open("rb") as fh:
            for line in fh:
                item = BatchItem.model_validate_json(line)
                if wanted is None or item.custom_id in wanted:
                    yield item


class ResultList(Sequence[BatchResult]):
    """A job's final results as a read-only sequence, read from its results file on demand.

    What :func:`~polybatch.run` and ``await_results`` return: iterating streams the file (memory
    does not grow with the job), ``len()`` comes from the ledger's counts, and indexing reads up
    to the item asked for. Use it as a list (``for r in results``, ``results[0]``, ``len``);
    ``list(results)`` makes a real one.
    """

    def __init__(self, files: JobFiles, length: int, status: str | None = None) -> None:
        self._files = files
        self._length = length
        self._status = status

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[BatchResult]:
        return self._files.results(self._status)

    @overload
    def __getitem__(self, index: int) -> BatchResult: ...

    @overload
    def __getitem__(self, index: slice) -> list[BatchResult]: ...

    def __getitem__(self, index: int | slice) -> BatchResult | list[BatchResult]:
        if isinstance(index, slice):
            return list(self)[index] if _negative(index) else list(islice(self, *_bounds(index)))
        i = index + self._length if index < 0 else index
        if not 0 <= i < self._length:
            raise IndexError("result index out of range")
        return next(islice(self, i, None))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{self._length} results in {self._files.results_path}>"


def _negative(s: slice) -> bool:
    return any(v is not None and v < 0 for v in (s.start, s.stop, s.step))


def _bounds(s: slice) -> tuple[int | None, int | None, int | None]:
    return s.start, s.stop, s.step


def copy_private(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` atomically, owner-only."""
    tmp = dest.with_name(dest.name + ".part")
    with _removed_on_error(tmp), src.open("rb") as fh, os.fdopen(private_fd(tmp), "wb") as out:
        shutil.copyfileobj(fh, out)
    tmp.replace(dest)
    return dest


@contextmanager
def _removed_on_error(tmp: Path) -> Iterator[None]:
    """Delete the temporary file ``tmp`` if writing it fails (a full disk, say): no ``.part``
    file is left behind; the next attempt writes it again from the start."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
