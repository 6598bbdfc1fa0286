"""Budgets that hold: on every provider the sandbox emulates, what a job actually costs is inside
the range estimated before it was submitted, so ``--max-cost`` set to the high end is never
exceeded (README, "Money")."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from polybatch import submit
from polybatch.sandbox import SandboxServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
MODELS = [
    "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5",
    "gemini:gemini-2.5-flash",
    "mistral:mistral-small-latest",
    "azure:gpt-4o-mini",
    "groq:llama-3.3-70b-versatile",
]


def _input(tmp_path: Path) -> Path:
    """The README's example requests, plus items without max_tokens and with a system prompt."""
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    lines += [
        json.dumps({"custom_id": "open-ended", "prompt": "Tell me about the sea and its tides."}),
        json.dumps(
            {
                "custom_id": "with-system",
                "messages": [
                    {"role": "system", "content": "Answer in one short paragraph."},
                    {"role": "user", "content": "Why is the sky blue?"},
                ],
                "max_tokens": 40,
            }
        ),
    ]
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("model", MODELS)
def test_actual_cost_is_inside_the_estimate_and_the_cap_holds(
    sandbox_server: SandboxServer, tmp_path: Path, model: str
) -> None:
    path = _input(tmp_path)
    job = submit(path, model, sandbox=sandbox_server).wait(poll_min=0.02, timeout=120)
    est = job.estimate()
    assert est is not None, model
    low, high = Decimal(est["low"]), Decimal(est["high"])
    actual = job.cost().total
    assert Decimal(0) < low <= actual <= high, (model, low, actual, high)
    # a cap at the high end lets the same job through, and it cannot cost more than the cap
    capped = submit(path, model, sandbox=sandbox_server, max_cost=str(high), new=True).wait(
        poll_min=0.02, timeout=120
    )
    assert capped.status().state == "completed"
    assert capped.cost().total <= high
