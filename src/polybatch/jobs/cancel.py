"""Cancelling a job: every in-flight batch is asked to stop, whatever the others answer.

A batch may end between the last poll and the cancel: OpenAI then answers 409, Anthropic 400.
Such an answer is no failure: the batch is polled, and when it has ended it is collected as it
is. A batch the provider does not know (404) is left to the poll, which marks its chunk lost
after the confirmation window (:mod:`.lost`). Any other refusal is reported once every batch
was tried, so that one stubborn batch never leaves the later ones running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..errors import ProviderError
from ..items import ItemError
from . import lost

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

log = logging.getLogger("polybatch")

#: tries of one batch's cancel when the provider fails transiently (a 503, a dropped
#: connection: the SDKs' own retries come first), with a doubling pause from CANCEL_PAUSE
CANCEL_ATTEMPTS = 4
CANCEL_PAUSE = 0.5

#: what the items of a batch that ended this way, with no result at all, are labelled
_ENDED_EMPTY = {
    "cancelled": ("batch_cancelled", "the batch was cancelled before this request ran"),
    "expired": ("batch_expired", "the batch expired before this request ran"),
}


def leftover_label(state: str, *, any_result: bool) -> tuple[str, ItemError]:
    """The status and error of a request an ended batch returned no result for.

    A cancelled or expired batch that returned nothing at all (no output file, no error file)
    stopped before its requests ran: they are ``cancelled`` / ``expired``. Otherwise the result
    went missing: ``errored`` with ``missing_result``. Both are retryable.
    """
    if not any_result and state in _ENDED_EMPTY:
        code, message = _ENDED_EMPTY[state]
        return state, ItemError(code=code, message=message, retryable=True)
    return "errored", ItemError(
        code="missing_result",
        message="the provider returned no result for this request",
        retryable=True,
    )


async def _has_ended(driver: JobDriver, c: ChunkRow) -> bool:
    """Whether chunk ``c``'s batch has ended at the provider (False if that cannot be told)."""
    assert c.batch_id is not None
    try:
        return (await driver.provider.apoll(c.batch_id)).terminal
    except ProviderError:
        return False


async def _cancel(driver: JobDriver, batch_id: str) -> None:
    """One batch's cancel, under the job path's transient-failure policy: a retryable failure
    is tried again (CANCEL_ATTEMPTS in all); a definite one is raised at once."""
    for attempt in range(CANCEL_ATTEMPTS):
        try:
            await driver.provider.acancel(batch_id)
            return
        except ProviderError as exc:
            if not exc.retryable or lost.is_not_found(exc) or attempt == CANCEL_ATTEMPTS - 1:
                raise
            log.info("cancelling batch %s failed (%s); trying again", batch_id, exc)
            await asyncio.sleep(CANCEL_PAUSE * 2**attempt)


async def cancel_all(driver: JobDriver) -> None:
    """Ask the provider to cancel each submitted chunk's batch, then take one step (it collects
    the batches that have ended). Raises one ProviderError naming every batch that refused."""
    refused: list[tuple[ChunkRow, ProviderError]] = []
    for c in driver.chunks():
        if c.state != "submitted" or not c.batch_id:
            continue
        try:
            await _cancel(driver, c.batch_id)
        except ProviderError as exc:
            if lost.is_not_found(exc):
                log.warning(
                    "job %s chunk %d: the provider does not know batch %s; nothing to cancel",
                    driver.id,
                    c.idx,
                    c.batch_id,
                )
            elif await _has_ended(driver, c):
                log.info(
                    "job %s chunk %d: batch %s had already ended; it is collected as it is",
                    driver.id,
                    c.idx,
                    c.batch_id,
                )
            else:
                refused.append((c, exc))
            continue
        driver.ledger.update_chunk(driver.id, c.idx, event="cancel-requested")
    try:
        await driver.astep()
    except ProviderError as exc:
        log.warning(
            "job %s: collecting the ended batches failed (`polybatch resume %s` tries again): %s",
            driver.id,
            driver.id,
            exc,
        )
    if refused:
        what = "; ".join(f"chunk {c.idx} (batch {c.batch_id}): {exc}" for c, exc in refused)
        raise ProviderError(
            f"job {driver.id}: {len(refused)} batch(es) could not be cancelled: {what}",
            retryable=all(exc.retryable for _, exc in refused),
        )
