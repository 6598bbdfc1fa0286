"""One neutral input file, every provider: the same custom_ids and statuses, and one usage table.

Swapping providers is a change of the model string alone; nothing else in the call differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polybatch import Job, submit, usage_table
from polybatch.sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
MODELS = [
    "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5",
    "azure:gpt-4o-mini",
    "gemini:gemini-2.5-flash",
    "mistral:mistral-small-latest",
    "groq:llama-3.3-70b-versatile",
    "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0",
    "vertex:gemini-2.5-flash",
    "xai:grok-4-1-fast-non-reasoning",
    "openrouter:openai/gpt-4o-mini",
    "together:meta-llama/Llama-3.3-70B-Instruct-Turbo",
]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Job]:
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("home")
    mp.chdir(home)
    from polybatch.sandbox import SandboxEngine
    from polybatch.testing import ISOLATED_ENV, SANDBOX_KEY

    for name in ISOLATED_ENV:
        mp.delenv(name, raising=False)
    # after the blanking: ISOLATED_ENV holds every POLYBATCH_ variable set once a plugin declares
    # one (POLYBATCH_VERTEX_BUCKET), POLYBATCH_HOME among them
    mp.setenv("POLYBATCH_HOME", str(home))
    out: dict[str, Job] = {}
    with SandboxServer(SandboxEngine(api_key=SANDBOX_KEY)) as server:
        for model in MODELS:
            out[model] = submit(EXAMPLES, model, sandbox=server).wait(poll_min=0.02, timeout=120)
    yield out
    mp.undo()


def test_same_ids_and_statuses_on_every_provider(jobs: dict[str, Job]) -> None:
    outcomes = {m: [(r.custom_id, r.status) for r in job.results()] for m, job in jobs.items()}
    reference = outcomes[MODELS[0]]
    assert len(reference) == 18 and {s for _, s in reference} == {"succeeded"}
    for model, got in outcomes.items():
        assert got == reference, model


def test_every_provider_reports_usage_and_a_priced_cost(jobs: dict[str, Job]) -> None:
    for model, job in jobs.items():
        usage = job.usage()
        assert usage.total_input_tokens > 0 and usage.output_tokens > 0, model
        assert job.cost().total > 0, model
        assert job.cost("standard").total > job.cost().total, model


def test_one_usage_table_across_providers(jobs: dict[str, Job]) -> None:
    table = usage_table(list(jobs.values()))
    for model in MODELS:
        provider, name = model.split(":", 1)
        assert provider in table and name in table
    assert "unpriced" not in table
