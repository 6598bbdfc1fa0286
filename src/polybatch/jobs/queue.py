"""Queue limits: admitting chunks under the enqueued-token limit, and what a refusal does.

Every major provider caps the prompt tokens an organisation may have queued per model. A job
with ``max_enqueued_tokens`` submits a chunk only while its in-flight chunks' estimated tokens
(the planner's, per model) plus the chunk's stay within the limit; a chunk alone is always
admitted (halved first while it alone is over the limit).

When the provider refuses anyway (:class:`~polybatch.errors.QueueFullError`: other work of the
organisation fills the queue), the chunk is not failed: it is "planned" again with
``queue_full_at`` set and waits until one of the job's own chunks of that model ends, or, when
none is in flight, for :data:`QUEUE_BACKOFF_SECONDS`. A chunk refused while alone is halved; a
single request refused alone ends as that item's error (``queue_full``). Each step is one ledger
transaction, so a crash at any point loses and duplicates nothing; a refused batch's id stays in
the "queue-full" event, so a later lost-create recovery never adopts it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProviderError, QueueFullError
from ..items import BatchItem, ItemError
from ..pricing.estimate import input_tokens
from ..providers import SubmittedBatch
from .collect import crashpoint

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

log = logging.getLogger("polybatch")

#: how long a refused chunk waits when none of the job's chunks of its model is in flight
QUEUE_BACKOFF_SECONDS = 60.0
#: the chunk states that hold room in the provider's queue
IN_FLIGHT = ("submitting", "submitted")
#: the item error of a single request the provider refused alone
QUEUE_FULL_CODE = "queue_full"


#: the provider setting (``[providers.NAME]``) of a queue limit per provider or per model
QUEUE_LIMIT_KEY = "max_enqueued_tokens"


def job_limit(option: int | None, settings: Mapping[str, Any]) -> int | dict[str, int] | None:
    """The queue limit a job records: the job option (flag, profile, ``submit()``), else the
    provider setting ``max_enqueued_tokens`` (an integer for every model, or a table of
    model -> integer); a bad setting is a ConfigError naming the key."""
    if option is not None:
        return option
    value = settings.get(QUEUE_LIMIT_KEY)
    if value is None:
        return None
    values = value if isinstance(value, dict) else {"": value}
    for model, n in values.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            key = QUEUE_LIMIT_KEY + (f".{model}" if model else "")
            raise ConfigError(f"provider setting '{key}': a whole number of tokens of at least 1")
    return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else int(value)


def limit_for(limit: int | Mapping[str, int] | None, model: str) -> int | None:
    """The enqueued-token limit of ``model`` under a job's recorded ``max_enqueued_tokens``."""
    if isinstance(limit, Mapping):
        found = limit.get(model)
        return int(found) if found is not None else None
    return limit


def waiting(c: ChunkRow) -> bool:
    """Whether a chunk waits for queue room (the provider refused it; not yet accepted)."""
    return c.state == "planned" and c.queue_full_at is not None


def backoff(driver: JobDriver) -> float:
    """The job's backoff after a refusal with nothing in flight (option ``queue_backoff``)."""
    return float(driver.row.options.get("queue_backoff") or QUEUE_BACKOFF_SECONDS)


def _ready(c: ChunkRow, chunks: list[ChunkRow], in_flight: Counter[str], wait: float) -> bool:
    """A refused chunk may try again once a chunk of its model ended after the refusal, or,
    with none of them in flight, once the backoff has passed."""
    assert c.queue_full_at is not None
    if any(o.model == c.model and (o.ended_at or 0) > c.queue_full_at for o in chunks):
        return True
    return in_flight[c.model] == 0 and time.time() >= c.queue_full_at + wait


def admit(driver: JobDriver, chunks: list[ChunkRow], max_in_flight: int) -> list[ChunkRow]:
    """The planned chunks to submit now: within ``max_in_flight`` and the queue limit."""
    limit = driver.row.options.get("max_enqueued_tokens")
    tokens: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for c in chunks:
        if c.state in IN_FLIGHT:
            tokens[c.model] += c.tokens
            count[c.model] += 1
    n_in_flight = sum(count.values())
    wait = backoff(driver)
    admitted: list[ChunkRow] = []
    for c in chunks:
        if n_in_flight + len(admitted) >= max_in_flight:
            break
        if c.state != "planned" or (waiting(c) and not _ready(c, chunks, count, wait)):
            continue
        cap = limit_for(limit, c.model)
        if cap is not None:
            if count[c.model] and tokens[c.model] + c.tokens > cap:
                continue  # no room while the job's own chunks are queued: wait for one to end
            while c.tokens > cap and c.count > 1:
                c = halve(driver, c, refused=False)
        admitted.append(c)
        tokens[c.model] += c.tokens
        count[c.model] += 1
    return admitted


def halve(driver: JobDriver, c: ChunkRow, *, refused: bool) -> ChunkRow:
    """Cut a planned (or refused) chunk in two; its first half, as recorded. Its wire file (the
    whole chunk, encoded at planning) is dropped: each half is encoded when it is submitted."""
    provider = driver.provider
    first = c.count // 2
    halves = [[0, 0], [0, 0]]  # tokens, wire bytes
    second_offset = c.offset
    with (driver.files.dir / c.items_file).open("rb") as fh:
        fh.seek(c.offset)
        for i in range(c.count):
            line = fh.readline()
            item = BatchItem.model_validate_json(line)
            half = halves[i >= first]
            half[0] += input_tokens(item)
            half[1] += len(provider.encode(item, item.model or c.model)) + 1
            if i < first:
                second_offset += len(line)
    now = time.time() if refused else None
    fields = {
        "count": first,
        "tokens": halves[0][0],
        "nbytes": halves[0][1],
        "state": "planned",
        "batch_id": None,
        "input_file_id": None,
        "batch_state": None,
        "queue_full_at": now,
    }
    new_idx = max(o.idx for o in driver.chunks()) + 1
    second = c.model_copy(
        update={
            "idx": new_idx,
            "offset": second_offset,
            "start": c.start + first,
            "count": c.count - first,
            "tokens": halves[1][0],
            "nbytes": halves[1][1],
            "queue_full_at": now,
            **{k: None for k in ("batch_id", "input_file_id", "batch_state")},
            "state": "planned",
        }
    )
    driver.files.wire_path(c.idx).unlink(missing_ok=True)
    driver.ledger.update_chunk(
        driver.id, c.idx, event="halved", add=second, extra={"second_half": new_idx}, **fields
    )
    log.info(
        "job %s chunk %d halved (%d + %d requests) for the queue limit",
        driver.id,
        c.idx,
        first,
        c.count - first,
    )
    return c.model_copy(update=fields)


async def refused(driver: JobDriver, c: ChunkRow, exc: QueueFullError) -> None:
    """The provider refused chunk ``c`` for a full queue (at create, or by failing the batch it
    accepted): queue it again, halve it, or, a single request refused alone, end it."""
    driver.failures.pop(c.idx, None)
    batch_id = c.batch_id
    if batch_id is not None and c.input_file_id is not None:
        try:  # the refused batch's upload is of no more use
            await driver.provider.acleanup(
                SubmittedBatch(batch_id=batch_id, input_file_id=c.input_file_id)
            )
        except ProviderError as err:
            log.warning(
                "job %s: could not delete input file %s: %s", driver.id, c.input_file_id, err
            )
    alone = not any(
        o.idx != c.idx and o.model == c.model and o.state in IN_FLIGHT for o in driver.chunks()
    )
    log.info("job %s chunk %d: %s%s", driver.id, c.idx, exc, " (alone)" if alone else "")
    crashpoint("before-requeue")
    if alone and c.count == 1:
        item_error = ItemError(
            code=QUEUE_FULL_CODE,
            message=f"the provider's queue refused this request even alone: {exc}",
            retryable=True,
        )
        driver.end_unsubmitted(c, "errored", item_error, event="queue-full-alone")
        return
    driver.ledger.update_chunk(
        driver.id,
        c.idx,
        state="planned",
        batch_id=None,
        input_file_id=None,
        batch_state=None,
        queue_full_at=time.time(),
        message=str(exc),
        event="queue-full",
        extra={"refused_batch": batch_id},
    )
    crashpoint("after-requeue")
    if alone:
        row = next(o for o in driver.chunks() if o.idx == c.idx)
        halve(driver, row, refused=True)
