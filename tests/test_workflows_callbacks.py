"""Results as each chunk lands: ``on_result`` / ``on_error``, ``Job.stream`` and ``Job.astream``
(issue 16 item 8, callbacks), on the ``fake`` provider (in process, no HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import pytest

import polybatch
from polybatch import BatchResult, Job

MODEL = "fake:echo"


def items(n: int, failing: tuple[int, ...] = ()) -> list[dict[str, str]]:
    return [
        {
            "custom_id": f"q-{i:03d}" + ("-fake-error" if i in failing else ""),
            "prompt": f"Question {i}?",
        }
        for i in range(n)
    ]


def test_on_result_is_called_per_chunk_while_the_job_runs(polybatch_home: Path) -> None:
    job = polybatch.submit(items(12), MODEL, chunk_size=4, max_in_flight=1, start=False)
    seen: list[tuple[str, str]] = []

    def on_result(r: BatchResult) -> None:
        # the job's own state when the result is handed over: still running for all but the last
        seen.append((r.custom_id, Job.load(job.id).status().state))

    job.wait(on_result=on_result, poll_min=0.01)
    assert [cid for cid, _ in seen] == [f"q-{i:03d}" for i in range(12)]
    states = Counter(state for _, state in seen)
    assert states["running"] >= 8, states  # the first chunks arrived before the job ended


def test_failures_go_to_on_error_once_with_their_final_outcome(polybatch_home: Path) -> None:
    ok: list[str] = []
    errors: list[BatchResult] = []

    async def on_error(r: BatchResult) -> None:  # async callbacks are awaited
        await asyncio.sleep(0)
        errors.append(r)

    results = polybatch.run(
        items(10, failing=(2, 7)),
        MODEL,
        chunk_size=3,
        retry_failed=2,
        poll_min=0.01,
        on_result=lambda r: ok.append(r.custom_id),
        on_error=on_error,
    )
    # retried twice, handed over once: the outcome of the last round
    assert sorted(r.custom_id for r in errors) == ["q-002-fake-error", "q-007-fake-error"]
    assert len(ok) == 8 and len(set(ok)) == 8
    final = {r.custom_id: r for r in results}
    for r in errors:
        assert r == final[r.custom_id]


def test_a_raising_callback_stops_the_wait_and_the_job_resumes(polybatch_home: Path) -> None:
    job = polybatch.submit(items(9), MODEL, chunk_size=3, max_in_flight=1, start=False)

    class SinkFull(Exception):
        pass

    def on_result(r: BatchResult) -> None:
        if r.custom_id == "q-004":
            raise SinkFull(r.custom_id)

    with pytest.raises(SinkFull):
        job.wait(on_result=on_result, poll_min=0.01)
    assert Job.load(job.id).status().state == "running"  # stopped, not lost
    # a later wait hands over the whole job again, the chunks collected before included
    again: list[str] = []
    Job.load(job.id).wait(on_result=lambda r: again.append(r.custom_id), poll_min=0.01)
    assert again == [f"q-{i:03d}" for i in range(9)]
    assert Job.load(job.id).status().state == "completed"


def test_stream_yields_results_as_chunks_land(polybatch_home: Path) -> None:
    job = polybatch.submit(items(7, failing=(3,)), MODEL, chunk_size=2, start=False)
    streamed = [r.custom_id for r in job.stream(poll_min=0.01)]
    assert sorted(streamed) == sorted(r.custom_id for r in job.results())
    only_ok = [r.custom_id for r in Job.load(job.id).stream(errors=False, poll_min=0.01)]
    assert len(only_ok) == 6 and "q-003-fake-error" not in only_ok


def test_astream_on_the_callers_loop(polybatch_home: Path) -> None:
    async def main() -> list[str]:
        job = await polybatch.asubmit(items(5), MODEL, chunk_size=2)
        return [r.custom_id async for r in job.astream(poll_min=0.01)]

    assert asyncio.run(main()) == [f"q-{i:03d}" for i in range(5)]


def test_leaving_astream_early_stops_driving_the_job(polybatch_home: Path) -> None:
    async def main() -> tuple[str, str]:
        job = await polybatch.asubmit(items(6), MODEL, chunk_size=2, max_in_flight=1)
        async with contextlib.aclosing(job.astream(poll_min=0.01)) as results:
            async for r in results:
                first = r.custom_id
                break
        state = Job.load(job.id).status().state  # nobody drives it now: still running
        await Job.load(job.id).await_done(poll_min=0.01)
        return first, state

    assert asyncio.run(main()) == ("q-000", "running")
