"""A batch the provider no longer knows: confirm it is gone, then mark its chunk lost.

A provider that answers "not found" (HTTP 404) for a submitted chunk's batch may have lost it, a
sandbox may have restarted, someone may have deleted it. One 404 could be a glitch (a replica
that has not seen the batch yet), so the first one is only recorded (the chunk's provider state
reads ``not_found`` and a ``not-found`` event is logged); a 404 on a poll at least
:data:`LOST_CONFIRM_SECONDS` after the first one in a row marks the chunk lost. Its items then get
``errored`` results with the retryable code ``batch_lost`` (``polybatch retry`` resubmits only
them), a warning names the chunk and the batch, and the rest of the job goes on. An answer in
between (any other state) restarts the window.

The window is measured in the ledger's event times, so it holds across processes (``status``,
then ``resume`` a minute later).
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from ..errors import ProviderError, ProviderHTTPError
from ..items import ItemError
from .files import private_fd
from .planner import iter_chunk_items
from .tally import Tally, day_of

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

log = logging.getLogger("polybatch")

#: seconds a batch must stay "not found" (from the first 404 in a row) before its chunk is lost;
#: tests shrink it (or set ``POLYBATCH_LOST_CONFIRM_SECONDS``)
LOST_CONFIRM_SECONDS = 30.0
#: the provider state a chunk shows between the first 404 and the verdict, and after it
NOT_FOUND = "not_found"
LOST = "lost"
NOT_FOUND_EVENT = "not-found"
#: downloads of an ended batch's results answered 404 in a row before its chunk is lost
RESULTS_NOT_FOUND_TRIES = 3


def confirm_seconds() -> float:
    """The confirmation window: ``POLYBATCH_LOST_CONFIRM_SECONDS`` if set, else the constant."""
    raw = os.environ.get("POLYBATCH_LOST_CONFIRM_SECONDS")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            log.warning("ignoring POLYBATCH_LOST_CONFIRM_SECONDS=%r: not a number", raw)
    return LOST_CONFIRM_SECONDS


def is_not_found(exc: ProviderError) -> bool:
    """Whether ``exc`` is the provider saying it does not know the thing asked for."""
    return isinstance(exc, ProviderHTTPError) and exc.status_code == 404


def first_not_found(driver: JobDriver, c: ChunkRow) -> float | None:
    """When the current run of 404s for chunk ``c`` began (None: the last answer was not one)."""
    first: float | None = None
    for e in driver.ledger.events(driver.id):
        if e["chunk"] != c.idx:
            continue
        if e["kind"] == NOT_FOUND_EVENT:
            first = first if first is not None else float(e["ts"])
        else:
            first = None  # submitted again, polled with another state, cancel asked ...
    return first


def on_not_found(driver: JobDriver, c: ChunkRow, exc: ProviderError) -> None:
    """Record a 404 for chunk ``c``'s batch; mark the chunk lost once the window has passed."""
    first = first_not_found(driver, c) if c.batch_state == NOT_FOUND else None
    if first is not None and time.time() - first >= confirm_seconds():
        mark_lost(driver, c, first)
        return
    driver.ledger.update_chunk(
        driver.id, c.idx, batch_state=NOT_FOUND, batch_id=c.batch_id, event=NOT_FOUND_EVENT
    )
    if first is None:
        log.warning(
            "job %s chunk %d: the provider does not know batch %s (%s); if it is still gone "
            "in %.0f s the chunk is marked lost",
            driver.id,
            c.idx,
            c.batch_id,
            exc,
            confirm_seconds(),
        )


def on_results_not_found(driver: JobDriver, c: ChunkRow, exc: ProviderError) -> None:
    """A 404 for the results of chunk ``c``'s ended batch (its output deleted or expired at the
    provider): after :data:`RESULTS_NOT_FOUND_TRIES` in a row, its items get a retryable
    ``results_lost`` result and the chunk is collected, so the rest of the job completes."""
    n = driver.failures.get(c.idx, 0) + 1
    driver.failures[c.idx] = n
    if n < RESULTS_NOT_FOUND_TRIES:
        log.warning(
            "job %s chunk %d: the results of batch %s are not found (%s); trying again",
            driver.id,
            c.idx,
            c.batch_id,
            exc,
        )
        return
    err = ItemError(
        code="results_lost",
        message=f"the provider no longer has the results of batch {c.batch_id}; "
        "`polybatch retry` resends the request",
        retryable=True,
    )
    mark_lost(driver, c, time.time(), err, why="its results are gone at the provider")


def mark_lost(
    driver: JobDriver,
    c: ChunkRow,
    since: float,
    err: ItemError | None = None,
    *,
    why: str | None = None,
) -> None:
    """Give each of chunk ``c``'s items a retryable ``batch_lost`` (or ``err``) result; collect
    the chunk."""
    err = err or ItemError(
        code="batch_lost",
        message=f"the provider no longer knows batch {c.batch_id}; `polybatch retry` resends it",
        retryable=True,
    )
    tally = Tally()
    day = day_of(None, driver.row.created_at)
    path = driver.files.chunk_results(c.idx)
    tmp = path.with_suffix(".part")
    with os.fdopen(private_fd(tmp), "w", encoding="utf-8") as out:
        for item in iter_chunk_items(driver.files.dir / c.items_file, c.offset, c.count):
            r = driver._synthetic(item.custom_id or "", "errored", err, c)
            tally.add_result(r, driver.row.provider, driver.row.model, day)
            out.write(r.model_dump_json(exclude_none=True) + "\n")
    tmp.replace(path)
    driver.ledger.update_chunk(
        driver.id,
        c.idx,
        state="collected",
        batch_state=LOST,
        ended_at=time.time(),
        n_ok=0,
        n_failed=c.count,
        live_ok=0,
        live_failed=0,
        tally=tally.dumps(),
        message=err.message,
        event="lost",
    )
    log.warning(
        "job %s chunk %d: batch %s is lost (%s); its %d requests are marked %s, "
        "`polybatch retry %s` resends them",
        driver.id,
        c.idx,
        c.batch_id,
        why or f"not found at the provider for {time.time() - since:.0f} s",
        c.count,
        err.code,
        driver.id,
    )
