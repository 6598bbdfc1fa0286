"""Collecting a chunk: download a terminal batch's results, one per item, in item order.

Also the crash points the SIGKILL tests stop the process at (``POLYBATCH_CRASH_AT``).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..items import BatchResult, ItemError, OutputCheck
from ..providers import BatchStatus
from .cancel import leftover_label
from .files import private_fd
from .planner import iter_chunk_checks
from .tally import Tally, batch_days, day_of

if TYPE_CHECKING:
    from .driver import JobDriver
    from .ledger import ChunkRow

log = logging.getLogger("polybatch")


async def aclose_stream(stream: AsyncIterator[Any]) -> None:
    """Close an async generator left early (an error while writing), so its download ends."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


def crashpoint(name: str) -> None:
    """Die here, as a SIGKILL would, when ``POLYBATCH_CRASH_AT`` names this point (crash tests)."""
    if os.environ.get("POLYBATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


async def collect(driver: JobDriver, c: ChunkRow, st: BatchStatus) -> None:
    """Download a terminal batch's results; every item of the chunk gets exactly one.

    Results arrive in any order; they are written as they come, then copied into the
    chunk's file in item order unless they came in it (memory: one offset per item of the
    chunk). Their tally is recorded with the chunk.
    """
    ids: list[str] = []
    # structured-output items: each reply is checked against its model here, where the items
    # are known, so the results on disk are final (a reply that does not validate is an
    # ``invalid_output`` item error) and carry the model's ref for ``BatchResult.parsed``
    checks: dict[str, OutputCheck] = {}
    for cid, check in iter_chunk_checks(driver.files.dir / c.items_file, c.offset, c.count):
        ids.append(cid)
        if check is not None:
            checks[cid] = check
    wire_to_user = {driver.provider.wire_custom_id(cid): cid for cid in ids}
    offsets: dict[str, int] = {}
    tally = Tally()
    days = batch_days(driver.row, [c])
    default_day = day_of(None, driver.row.created_at)
    provider, model = driver.row.provider, driver.row.model
    path = driver.files.chunk_results(c.idx)
    arrival = path.with_suffix(".arrival")
    try:
        with open(private_fd(arrival, readable=True), "w+b") as out:

            def emit(r: BatchResult) -> None:
                offsets[r.custom_id] = out.tell()
                tally.add_result(r, provider, model, days.get(r.batch_id or "", default_day))
                out.write(r.model_dump_json(exclude_none=True).encode() + b"\n")

            if st.state == "failed" and not driver.provider.results_after_failure:
                err = ItemError(
                    code="batch_failed", message=st.message or "the provider rejected the batch"
                )
                for cid in ids:
                    emit(driver._synthetic(cid, "errored", err, c))
            else:
                assert c.batch_id is not None
                stream = driver.provider.aresults(c.batch_id)
                try:
                    async for r in stream:
                        user_id = wire_to_user.get(r.custom_id)
                        if user_id is None or user_id in offsets:
                            log.warning(
                                "job %s chunk %d: ignoring unexpected result %r",
                                driver.id,
                                c.idx,
                                r.custom_id,
                            )
                            continue
                        if user_id != r.custom_id:  # most adapters send the ids as they are
                            r = r.model_copy(update={"custom_id": user_id})
                        check = checks.get(user_id)
                        emit(check.apply(r) if check is not None else r)
                finally:
                    await aclose_stream(stream)
                status, missing = leftover_label(st.state, any_result=bool(offsets))
                for cid in ids:
                    if cid not in offsets:
                        emit(driver._synthetic(cid, status, missing, c))
            # results that came in item order (as many providers send them) are already in place
            in_order = all(a == b for a, b in zip(offsets, ids, strict=True))
            tmp = arrival if in_order else path.with_suffix(".part")
            if not in_order:
                with open(private_fd(tmp), "wb") as ordered:
                    for cid in ids:
                        out.seek(offsets[cid])
                        ordered.write(out.readline())
        if not in_order:
            arrival.unlink()
    except OSError:
        # a full disk or another failed write: no staging file of the chunk stays behind
        arrival.unlink(missing_ok=True)
        path.with_suffix(".part").unlink(missing_ok=True)
        raise
    crashpoint("before-collected")
    tmp.replace(path)
    driver.ledger.update_chunk(
        driver.id,
        c.idx,
        state="collected",
        batch_state=st.state,
        ended_at=time.time(),
        n_ok=tally.succeeded,
        n_failed=tally.failed,
        live_ok=0,
        live_failed=0,
        tally=tally.dumps(),
        message=st.message,
        event="collected",
    )
