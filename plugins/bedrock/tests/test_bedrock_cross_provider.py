"""Swap by configuration alone: the example input on bedrock gives the same ids and statuses as on
openai and anthropic, priced, in one usage table (what tests/test_cross_provider.py checks for
the built-in providers; its MODELS list can take ``BEDROCK`` as it is)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polybatch import Job, submit, usage_table
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch.testing import SANDBOX_KEY

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "requests.jsonl"
BEDROCK = "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0"
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", BEDROCK]


@pytest.fixture
def jobs(polybatch_home: Path) -> Iterator[dict[str, Job]]:
    with SandboxServer(SandboxEngine(api_key=SANDBOX_KEY)) as server:
        yield {
            m: submit(EXAMPLES, m, sandbox=server).wait(poll_min=0.02, timeout=120) for m in MODELS
        }


def test_same_ids_statuses_and_one_priced_table(jobs: dict[str, Job]) -> None:
    outcomes = {m: [(r.custom_id, r.status) for r in job.results()] for m, job in jobs.items()}
    assert len(outcomes[BEDROCK]) == 18 and {s for _, s in outcomes[BEDROCK]} == {"succeeded"}
    for model, got in outcomes.items():
        assert got == outcomes[MODELS[0]], model
    bedrock = jobs[BEDROCK]
    assert bedrock.cost().total > 0 and bedrock.cost("standard").total > bedrock.cost().total
    table = usage_table(list(jobs.values()))
    assert "bedrock" in table and "anthropic.claude-haiku-4-5-20251001-v1:0" in table
    assert "unpriced" not in table
