"""Adopting a batch whose create answer was lost, on providers that cannot search by metadata.

A create whose answer never arrived (a dropped connection, a timeout, a kill right after the
call) may or may not have made a batch. Providers that keep a chunk's metadata are asked for it
by :meth:`~polybatch.providers.BatchProvider.afind_batch`. Anthropic, OpenRouter and some
OpenAI-compatible vendors keep none; for them the provider's listing
(:meth:`~polybatch.providers.BatchProvider.alist_batches_since`) is read instead, and a batch is
this chunk's when

1. its metadata (where the provider derives some, e.g. from the upload's file name) names the
   job and chunk; or else
2. it was created in the chunk's create window, holds as many requests as the chunk, is held by
   no chunk of any job in the ledger, and, once it has ended, its first result's custom id is one
   of the chunk's. A batch still running is adopted on those grounds only when it is the only
   candidate and no other chunk waiting for recovery has the same count; otherwise the chunk
   waits until the candidates end and can be told apart by their results.

Further batches that prove to be this chunk's (several lost attempts) are orphans: they are
cancelled and a warning says so. When nothing can rule a duplicate out (a provider that can
neither find nor list), a warning says that resubmitting may pay twice.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import ProviderError
from ..providers import BatchProvider, RecentBatch
from .collect import aclose_stream
from .planner import iter_chunk_checks

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

log = logging.getLogger("polybatch")

#: how far a provider's clock may be behind ours: batches created this long before the first
#: create attempt still count as candidates
CLOCK_SKEW_SECONDS = 300.0


@dataclass
class Decision:
    """What to do with a chunk whose create answer was lost."""

    action: Literal["adopt", "wait", "resubmit"]
    batch_id: str | None = None
    #: other batches found to be this chunk's: cancel them
    orphans: list[str] = field(default_factory=list)


async def _first_id(provider: BatchProvider, batch_id: str) -> str | None:
    """The custom id (wire form) of an ended batch's first result, if it has any."""
    stream = provider.aresults(batch_id)
    try:
        async for r in stream:
            return r.custom_id
    finally:
        await aclose_stream(stream)
    return None


async def decide(
    provider: BatchProvider,
    recent: list[RecentBatch],
    *,
    claimed: Collection[str],
    metadata: Mapping[str, str],
    count: int,
    model: str,
    wire_ids: Callable[[], Collection[str]],
    rivals: int,
) -> Decision:
    """Which of ``recent`` (already cut to the chunk's window) is the chunk's batch.

    ``wire_ids`` reads the chunk's custom ids as sent (once, and only if an ended candidate must
    be told apart by its results); ``rivals`` is how many other chunks awaiting recovery have
    the same request count.
    """
    chunk_ids = functools.cache(wire_ids)
    free = [b for b in recent if b.batch_id not in claimed]
    # a provider that derives metadata gives every batch some ({} when not polybatch's)
    named = [(b, b.metadata) for b in free if b.metadata is not None]
    if named:
        mine = [b for b, meta in named if all(meta.get(k) == v for k, v in metadata.items())]
        return _pick(sorted(mine, key=lambda b: b.created_at))
    candidates = [
        b for b in free if b.request_count == count and (b.model is None or b.model == model)
    ]
    if not candidates:
        return Decision("resubmit")
    proven: list[RecentBatch] = []
    running: list[RecentBatch] = []
    for b in candidates:
        if not b.ended:
            running.append(b)
            continue
        try:
            first = await _first_id(provider, b.batch_id)
        except ProviderError as exc:
            log.info("could not read the results of candidate batch %s: %s", b.batch_id, exc)
            running.append(b)  # cannot tell yet
            continue
        if first is not None and first in chunk_ids():
            proven.append(b)
    if proven:
        return _pick(sorted(proven, key=lambda b: b.created_at))
    if not running:
        return Decision("resubmit")  # every candidate ended and belongs to someone else
    if len(running) == 1 and rivals == 0:
        return Decision("adopt", running[0].batch_id)
    return Decision("wait")


def _pick(mine: list[RecentBatch]) -> Decision:
    if not mine:
        return Decision("resubmit")
    return Decision("adopt", mine[0].batch_id, orphans=[b.batch_id for b in mine[1:]])


async def cancel_orphans(
    provider: BatchProvider, job_id: str, idx: int, orphans: list[str]
) -> None:
    """Cancel batches that duplicate an adopted one, saying so (an ended one is paid already)."""
    for batch_id in orphans:
        try:
            await provider.acancel(batch_id)
        except ProviderError as exc:
            log.warning(
                "job %s chunk %d: batch %s duplicates the chunk's batch (a lost create answer);"
                " cancelling it failed: %s",
                job_id,
                idx,
                batch_id,
                exc,
            )
        else:
            log.warning(
                "job %s chunk %d: batch %s duplicated the chunk's batch (a lost create answer);"
                " cancelled it",
                job_id,
                idx,
                batch_id,
            )


async def find_lost(
    provider: BatchProvider,
    *,
    since: float | None,
    claimed: Callable[[list[str]], Collection[str]],
    metadata: Mapping[str, str],
    count: int,
    model: str,
    wire_ids: Callable[[], Collection[str]],
    rivals: int,
) -> Decision | None:
    """The decision for a lost create by the provider's listing; None when it cannot list.

    ``since`` is when the chunk's first create attempt was logged, ``claimed`` says which batch
    ids the ledger already holds, ``wire_ids`` reads the chunk's custom ids (only when needed).
    """
    start = (since if since is not None else 0.0) - CLOCK_SKEW_SECONDS
    recent = await provider.alist_batches_since(start)
    if recent is None:
        return None
    recent = [b for b in recent if b.created_at >= start]
    return await decide(
        provider,
        recent,
        claimed=claimed([b.batch_id for b in recent]),
        metadata=metadata,
        count=count,
        model=model,
        wire_ids=wire_ids,
        rivals=rivals,
    )


async def recover(driver: JobDriver, c: ChunkRow, rivals: int) -> bool:
    """Find the batch of chunk ``c``, whose create answer was lost, by its metadata or, where
    the provider keeps none, by its listing; resubmit only when it was not made. False while
    the chunk must wait (``rivals`` other lost chunks hold as many requests)."""
    provider = driver.provider
    decision = await find_lost(
        provider,
        since=driver.ledger.first_event_at(driver.id, c.idx, "submitting"),
        claimed=lambda ids: driver.ledger.claimed_batches(driver.row.provider, ids),
        metadata=driver.meta(c),
        count=c.count,
        model=c.model,
        wire_ids=lambda: {
            provider.wire_custom_id(cid)
            for cid, _ in iter_chunk_checks(driver.files.dir / c.items_file, c.offset, c.count)
        },
        rivals=rivals,
    )
    if decision is None:  # the provider cannot list: by metadata, where it keeps some
        found = await provider.afind_batch(driver.meta(c))
        if found is None and not provider.finds_batches:
            log.warning(
                "job %s chunk %d: the create's answer was lost and %s cannot look a batch up:"
                " resubmitting may duplicate a batch (cancel it at the provider if so)",
                driver.id,
                c.idx,
                provider.name,
            )
        decision = Decision("adopt", found) if found else Decision("resubmit")
    if decision.action == "wait":
        log.info("job %s chunk %d: waiting to tell lost-create candidates apart", driver.id, c.idx)
        return False
    if decision.action == "resubmit":
        driver.ledger.update_chunk(driver.id, c.idx, state="planned", event="resubmit")
        return True
    log.info(
        "job %s chunk %d: found batch %s created before a crash or a lost answer",
        driver.id,
        c.idx,
        decision.batch_id,
    )
    driver.ledger.update_chunk(
        driver.id,
        c.idx,
        state="submitted",
        batch_id=decision.batch_id,
        submitted_at=time.time(),
        event="recovered",
    )
    await cancel_orphans(provider, driver.id, c.idx, decision.orphans)
    return True
