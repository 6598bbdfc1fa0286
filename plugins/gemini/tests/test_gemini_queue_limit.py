"""Gemini's queue-full refusal over HTTP with the real google-genai SDK: the sandbox answers a
create over the project's enqueued-token limit with 429 ``RESOURCE_EXHAUSTED``; the adapter
maps it to QueueFullError, and the job waits for room instead of failing the chunk."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from gemini_support import MODEL

import polybatch
from polybatch.sandbox import SandboxServer
from polybatch.testing.helpers import event_kinds, make_items

#: "question number N" as one part: 3 + 3 + 4 prompt tokens (polybatch.tokens)
ITEM_TOKENS = 10

Start = Callable[..., AbstractContextManager[SandboxServer]]


def test_a_job_over_the_projects_queue_limit_completes_with_no_chunk_failed(
    sandbox: Start, tmp_path: Path
) -> None:
    with sandbox(rate=40, queue_limit_tokens=3 * 5 * ITEM_TOKENS) as srv:
        job = polybatch.submit(
            make_items(40), f"gemini:{MODEL}", sandbox=srv, home=tmp_path, chunk_size=5,
            max_in_flight=8, queue_backoff=0.05,
        )  # fmt: skip
        job.wait(timeout=60, poll_min=0.01, poll_max=0.05)
        results = list(job.results())
        assert Counter(r.custom_id for r in results) == {f"c{i}": 1 for i in range(40)}
        assert {r.status for r in results} == {"succeeded"}
        assert all(c.n_failed == 0 for c in job.chunks())
        assert event_kinds(job)["queue-full"] >= 5
        ran = Counter(len(b.requests) for b in srv.engine.batches.values())
        assert ran == {5: 8}, "each chunk made one batch, the refused creates none"
