"""The fault campaign: every provider, ten seeds, every sandbox fault at once, lost create answers
(a create whose answer times out or whose connection drops after the server made the batch) and
truncated downloads included.

Each run must end with every input custom_id exactly once, in input order, the job completed, the
usage total equal to the sum over results, and not one provider batch that the job's ledger does
not know: on providers that keep a chunk's metadata the lost batch is found by it, on those that
keep none (Anthropic, OpenRouter, Together) it is adopted from the provider's listing
(``polybatch.jobs.adopt``). Bedrock's campaign, over ten seeds too, is in its plugin
(plugins/bedrock/tests/test_bedrock_chaos.py): its sandbox keys jobs by id, the ledger by ARN.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch.items import Usage
from polybatch.sandbox import Faults, SandboxServer

from .test_faults import fast_sdk_retries, ids_of, run_job, write_items

pytestmark = pytest.mark.slow

__all__ = ["fast_sdk_retries"]  # the autouse fixture, shared with test_faults

MODELS = [
    "openai:gpt-4o-mini",
    "azure:gpt-4o-mini",
    "groq:llama-3.3-70b-versatile",
    "together:meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "anthropic:claude-haiku-4-5",
    "gemini:gemini-2.5-flash",
    "mistral:mistral-small-latest",
    "xai:grok-4-1-fast-non-reasoning",
    "openrouter:openai/gpt-4o-mini",
    "vertex:gemini-2.5-flash",
]
SEEDS = range(21, 31)
#: every fault at once, at moderate rates
CHAOS = (
    "http=0.08,slow=0.05,slow_s=0.005,upload=0.1,item=0.1,fail=0.1,expire=0.1,cancel=0.1,"
    "missing=0.1,create_timeout=0.1,drop=0.03,truncate=0.15"
)


def unknown_batches(server: SandboxServer, known: set[str]) -> set[str]:
    """Batches the sandbox holds that no chunk of the job names (Gemini and Vertex prefix the
    engine's id with a resource path)."""
    tails = {k.rsplit("/", 1)[-1] for k in known}
    return {b for b in server.engine.batches if b not in known and b not in tails}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", MODELS)
def test_every_item_once_and_no_duplicate_batch(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, model: str, seed: int
) -> None:
    server = make_sandbox(faults=Faults.parse(f"seed={seed},{CHAOS}"))
    path = write_items(tmp_path / "in.jsonl", 24 + seed % 7)
    job = run_job(server, path, model, chunk_size=5, max_in_flight=3, retry_failed=3)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    assert job.status().state == "completed"
    known = {c.batch_id for c in job.chunks() if c.batch_id}
    assert unknown_batches(server, known) == set(), "a duplicate batch the ledger does not know"
    assert job.usage() == sum((r.usage for r in results), Usage())
