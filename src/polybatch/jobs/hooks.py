"""The ledger's side of webhooks: seen webhook ids, the chunk a batch event is for, the wake-up.

A receiver (:mod:`polybatch.webhooks`) records each verified delivery's id once
(:func:`remember_delivery`: a replay or a duplicate is then ignored), finds the chunk the batch
belongs to (:func:`chunk_for_batch`), and logs a ``webhook`` event on it (:func:`note_webhook`).
A process waiting on the job (:meth:`Job.await_done`) polls only every
``[webhooks] poll_interval_with_webhooks`` seconds while webhooks are on, but wakes as soon as
such an event is logged (:func:`sleep_until_webhook`): a lost webhook delays results, never
loses them.
"""

from __future__ import annotations

import asyncio
import time

from .. import config as _config
from .ledger import Ledger

#: how often a waiting job looks for a webhook event in the ledger (a local read, no API call)
WAKE_CHECK_SECONDS = 0.2


def settings() -> _config.WebhookSettings:
    """The ``[webhooks]`` table of the config in force."""
    return _config.load_config()[0].webhooks


def remember_delivery(ledger: Ledger, webhook_id: str, provider: str) -> bool:
    """Record a delivery's id; False when it was recorded before (a replay or a duplicate)."""
    with ledger._tx() as db:
        cur = db.execute(
            "INSERT OR IGNORE INTO webhooks_seen VALUES (?,?,?)",
            (webhook_id, provider, time.time()),
        )
        return cur.rowcount == 1


def chunk_for_batch(ledger: Ledger, provider: str, batch_id: str) -> tuple[str, int] | None:
    """(job id, chunk index) of the chunk holding ``batch_id`` on ``provider``, if any."""
    row = (
        ledger._conn()
        .execute(
            "SELECT c.job_id, c.idx FROM chunks c JOIN jobs j ON j.id = c.job_id"
            " WHERE j.provider = ? AND c.batch_id = ? ORDER BY c.idx DESC LIMIT 1",
            (provider, batch_id),
        )
        .fetchone()
    )
    return None if row is None else (str(row["job_id"]), int(row["idx"]))


def note_webhook(ledger: Ledger, job_id: str, idx: int) -> None:
    """Log that a verified event came for this chunk (what wakes a waiting process)."""
    ledger.update_chunk(job_id, idx, event="webhook")


def last_webhook_at(ledger: Ledger, job_id: str) -> float | None:
    """When the latest webhook event of a job was logged."""
    row = (
        ledger._conn()
        .execute(
            "SELECT MAX(ts) AS ts FROM events WHERE job_id = ? AND kind = 'webhook'", (job_id,)
        )
        .fetchone()
    )
    return None if row is None or row["ts"] is None else float(row["ts"])


async def sleep_until_webhook(ledger: Ledger, job_id: str, seconds: float) -> None:
    """Sleep ``seconds``, or less if a webhook event for the job is logged meanwhile."""
    since = time.time()
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(WAKE_CHECK_SECONDS, left))
        seen = last_webhook_at(ledger, job_id)
        if seen is not None and seen >= since:
            return
