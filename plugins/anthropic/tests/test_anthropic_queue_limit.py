"""Anthropic's queue-full refusal over HTTP with the real anthropic SDK: the Message Batches
rate limits cap the organisation's batch requests in the processing queue, and a create over
them is answered 429 ``rate_limit_error`` (the sandbox counts the queue in prompt tokens, as for
every provider); the adapter maps a 429 at create to QueueFullError, so the chunk waits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from anthropic_support import MODEL

import polybatch
from polybatch.sandbox import SandboxServer
from polybatch.testing.helpers import event_kinds, make_items

#: "question number N": 3 + 3 + 4 prompt tokens (polybatch.tokens)
ITEM_TOKENS = 10

Start = Callable[..., AbstractContextManager[SandboxServer]]


def test_a_job_over_the_queue_limit_completes_and_a_lone_chunk_is_halved(
    sandbox: Start, tmp_path: Path
) -> None:
    with sandbox(rate=40, queue_limit_tokens=3 * ITEM_TOKENS) as srv:
        job = polybatch.submit(
            make_items(12), f"anthropic:{MODEL}", sandbox=srv, home=tmp_path, chunk_size=6,
            max_in_flight=4, queue_backoff=0.05,
        )  # fmt: skip
        job.wait(timeout=60, poll_min=0.01, poll_max=0.05)
        results = list(job.results())
        assert [r.custom_id for r in results] == [f"c{i}" for i in range(12)]
        assert {r.status for r in results} == {"succeeded"}
        kinds = event_kinds(job)
        assert kinds["queue-full"] >= 2 and kinds["halved"] >= 2
        ran = Counter(r["custom_id"] for b in srv.engine.batches.values() for r in b.requests)
        assert set(ran.values()) == {1} and len(ran) == 12
