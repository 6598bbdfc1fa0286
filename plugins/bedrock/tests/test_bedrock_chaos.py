"""Chaos on bedrock: multi-chunk jobs with every sandbox fault on, lost create answers, dropped
connections and truncated downloads included (the idempotent create makes those safe here).

Each run ends with every input custom_id exactly once, in input order, each with the status the
sandbox says its record came to, no Bedrock job the ledger does not know, and usage totals equal
to the sum over results (the checks of tests/test_reliability.py, on Bedrock's job ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polybatch import submit
from polybatch.items import Usage
from polybatch.sandbox import Faults, SandboxBatch, SandboxEngine, SandboxServer
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT
from polybatch.testing import SANDBOX_KEY
from polybatch_bedrock import codec

MODEL = "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0"
CHAOS = (
    "http=0.08,slow=0.05,slow_s=0.005,upload=0.1,item=0.1,fail=0.1,expire=0.1,cancel=0.1,"
    "missing=0.1,create_timeout=0.1,drop=0.03,truncate=0.15"
)


def expected_status(batch: SandboxBatch, record_id: str, now: float) -> str:
    state = batch.state(now)
    if state == "failed":
        return "errored"
    index = next(i for i, r in enumerate(batch.requests) if r["recordId"] == record_id)
    if index >= batch.processed(now):
        return {"expired": "expired", "cancelled": "cancelled"}[state]
    ok = "modelOutput" in batch.outcome(index)
    if ok and BATCH_MISSING_OUTPUT in batch.faults:
        return "errored"  # lost with the output: missing_result
    return "succeeded" if ok else "errored"


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(11, 21))  # ten seeds, as tests/test_chaos.py runs
def test_chaos_every_item_once_right_status_no_duplicates(
    seed: int, tmp_path: Path, polybatch_home: Path
) -> None:
    src = tmp_path / "in.jsonl"
    ids = [f"q-{i:03d}" for i in range(40 + seed)]
    src.write_text("".join(json.dumps({"custom_id": c, "prompt": f"{c}?"}) + "\n" for c in ids))
    engine = SandboxEngine(api_key=SANDBOX_KEY, faults=Faults.parse(f"seed={seed},{CHAOS}"))
    with SandboxServer(engine) as server:
        job = submit(
            src,
            MODEL,
            sandbox=server,
            chunk_size=7,
            max_in_flight=3,
            retry_failed=3,
            provider_settings={"max_retries": 0, "timeout": 5},
        ).wait(poll_min=0.01, poll_max=0.05, timeout=120)
        results = list(job.results())
        now = engine.now()
        by_job = {b.extra["job_id"]: b for b in engine.batches.values() if b.namespace == "bedrock"}
        known = {c.batch_id for c in job.chunks() if c.batch_id}
        struck = {e.kind for e in engine.fault_log}
    assert [r.custom_id for r in results] == ids
    assert job.status().state == "completed"
    assert set(by_job) == known, "no Bedrock job the ledger does not know"
    for r in results:
        assert r.batch_id is not None, r
        batch = by_job[r.batch_id]
        record = codec.wire_custom_id(r.custom_id)
        assert r.status == expected_status(batch, record, now), (r, batch.faults)
    total = sum((r.usage for r in results), Usage())
    assert job.usage() == total
    assert struck & {"create_timeout", "drop", "truncate", "error"}, struck
