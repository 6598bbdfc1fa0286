"""Chaos: multi-chunk jobs on each provider with every fault on at moderate rates, several seeds.

Each run must end with every input custom_id exactly once, in input order; each result's status
must be what the sandbox says the request that produced it came to; no batch may exist that the
job's ledger does not know (no duplicates); and usage totals must equal the sum over results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polybatch.items import Usage
from polybatch.sandbox import Faults, SandboxBatch, SandboxServer
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT

from .test_faults import (
    ANTHROPIC,
    OPENAI,
    duplicates,
    fast_sdk_retries,
    ids_of,
    run_job,
    write_items,
)

#: chaos runs: many jobs under every fault: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

__all__ = ["fast_sdk_retries"]  # the autouse fixture, shared with test_faults

SEEDS = [11, 12, 13]
TOGETHER = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"

#: every fault at a moderate rate but the three tested on their own below
CHAOS = (
    "http=0.08,slow=0.05,slow_s=0.005,upload=0.1,item=0.1,fail=0.1,expire=0.1,cancel=0.1,"
    "missing=0.1"
)
# every fault at once (lost create answers, dropped connections and truncated downloads with
# the rest), on every provider over ten seeds: test_chaos.py


def expected_status(batch: SandboxBatch, custom_id: str, now: float) -> str:
    """What the sandbox says became of ``custom_id`` in ``batch`` (neutral status names)."""
    state = batch.state(now)
    if state == "failed":
        return "errored"
    index = next(i for i, r in enumerate(batch.requests) if _cid(r) == custom_id)
    if index >= batch.processed(now):
        return {"expired": "expired", "cancelled": "cancelled"}[state]
    outcome: Any = batch.outcome(index)
    ok = outcome.ok if hasattr(outcome, "ok") else outcome["type"] == "succeeded"
    if ok and BATCH_MISSING_OUTPUT in batch.faults:
        return "errored"  # the result was lost with the output file: missing_result
    return "succeeded" if ok else "errored"


def _cid(request: Any) -> str:
    return str(request.custom_id if hasattr(request, "custom_id") else request["custom_id"])


def check_run(server: SandboxServer, path: Path, model: str) -> None:
    job = run_job(server, path, model, chunk_size=7, max_in_flight=3, retry_failed=3)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)  # each exactly once, in input order
    assert job.status().state == "completed"
    assert duplicates(server, job) == 0
    now = server.engine.now()
    for r in results:
        assert r.batch_id is not None, r
        batch = server.engine.batches[r.batch_id]
        assert r.status == expected_status(batch, r.custom_id, now), (r, batch.faults)
    total = sum((r.usage for r in results), Usage())
    assert job.usage() == total
    assert total.output_tokens == sum(r.usage.output_tokens for r in results if r.ok)
    assert not list(job.dir.glob("**/*.part"))


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC, TOGETHER])
def test_chaos_every_item_once_right_status_no_duplicates(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, model: str
) -> None:
    struck: set[str] = set()
    for seed in SEEDS:
        server = make_sandbox(faults=Faults.parse(f"seed={seed},{CHAOS}"))
        # a fresh input (so a fresh job) per seed
        check_run(server, write_items(tmp_path / f"in-{seed}.jsonl", 40 + seed), model)
        struck |= {e.kind for e in server.engine.fault_log}
    # the seeds exercise the faults that matter (item faults are not logged: checked by status)
    assert {"error", "expire", "cancel", "missing_output", "fail"} <= struck, struck
