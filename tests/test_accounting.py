"""Money on real jobs: estimates that bracket the actual cost, budgets, costs, usage and prices."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from polybatch import Job, submit, usage_table
from polybatch.errors import BudgetExceededError
from polybatch.pricing import UnpricedWarning
from polybatch.sandbox import SandboxServer
from polybatch.testing import Sandbox, run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
def test_estimate_brackets_the_actual_cost(sandbox_server: SandboxServer, model: str) -> None:
    job = fast(submit(EXAMPLES, model, sandbox=sandbox_server))
    est = job.estimate()
    assert est is not None
    low, high = Decimal(est["low"]), Decimal(est["high"])
    actual = job.cost().total
    assert isinstance(actual, Decimal)
    assert Decimal(0) < low <= actual <= high
    # the same tokens at standard prices cost more: that is the point of batching
    assert job.cost("standard").total > actual


def test_max_cost_refuses_before_anything_is_uploaded(sandbox_server: SandboxServer) -> None:
    with pytest.raises(
        BudgetExceededError,
        match=r"exceeds --max-cost \$0.0000001 \(range \$0.0000\d+ to \$0.000\d+\); nothing was submitted",
    ):
        submit(EXAMPLES, "openai:gpt-4o-mini", sandbox=sandbox_server, max_cost="0.0000001")
    assert sandbox_server.engine.requests_seen == []
    job = fast(submit(EXAMPLES, "openai:gpt-4o-mini", sandbox=sandbox_server, max_cost="5"))
    assert job.status().state == "completed"


def test_max_cost_with_an_unpriced_model_refuses_too(sandbox_server: SandboxServer) -> None:
    with pytest.raises(BudgetExceededError, match="cannot check --max-cost"):
        submit(EXAMPLES, "openai:my-private-finetune", sandbox=sandbox_server, max_cost="5")
    assert sandbox_server.engine.requests_seen == []


def test_unpriced_model_runs_and_shows_unpriced_never_zero(
    polybatch_sandbox: Callable[..., Sandbox],
) -> None:
    # a fine-tune the account has: the sandbox serves it, polybatch's registry does not price it
    server = polybatch_sandbox(["openai"], models={"openai": ["my-private-finetune"]}).server
    with pytest.warns(UserWarning, match="'my-private-finetune' is not in the price registry"):
        job = fast(submit(EXAMPLES, "openai:my-private-finetune", sandbox=server))
    with pytest.warns(UnpricedWarning):
        text = usage_table([job])
    assert "unpriced" in text
    assert "0.0000 |" not in text.split("TOTAL")[0].split("my-private-finetune")[1]


def test_user_price_override_wins(
    sandbox_server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "polybatch.toml").write_text(
        """
[[prices.price]]
provider = "openai"
model = "gpt-4o-mini"
mode = "batch"
effective = 2026-01-01
input = "1000"
output = "1000"
source = "test override"
"""
    )
    monkeypatch.chdir(tmp_path)
    from polybatch.pricing import price_registry

    price_registry(reload=True)
    try:
        job = fast(submit(EXAMPLES, "openai:gpt-4o-mini", sandbox=sandbox_server))
        usage = job.usage()
        tokens = usage.total_input_tokens + usage.output_tokens
        assert job.cost().total == Decimal(tokens) * Decimal(1000) / Decimal(1_000_000)
    finally:
        monkeypatch.chdir(Path(__file__).parent)
        price_registry(reload=True)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, {**os.environ, **(env or {})})


@pytest.mark.slow
def test_cli_estimate_usage_and_prices(sandbox_server: SandboxServer) -> None:
    est = cli("estimate", str(EXAMPLES), "-m", "anthropic:claude-haiku-4-5")
    assert est.returncode == 0, est.stderr
    assert "estimate: $" in est.stdout and "method:" in est.stdout and "1 batch(es)" in est.stdout
    over = cli(
        "estimate", str(EXAMPLES), "-m", "anthropic:claude-haiku-4-5", "--max-cost", "0.00000001"
    )
    assert over.returncode == 2 and "exceeds --max-cost" in over.stderr

    a = fast(submit(EXAMPLES, "openai:gpt-4o-mini", sandbox=sandbox_server))
    b = fast(submit(EXAMPLES, "anthropic:claude-haiku-4-5", sandbox=sandbox_server))
    table = cli("usage")
    assert table.returncode == 0, table.stderr
    assert (
        "gpt-4o-mini" in table.stdout
        and "claude-haiku-4-5" in table.stdout
        and "TOTAL" in table.stdout
    )
    rows = json.loads(
        cli("usage", "--by", "provider,job", "--format", "json", "--digits", "8").stdout
    )
    by_job = {r["job_id"]: r for r in rows if r.get("job_id") not in (None, "")}
    assert set(by_job) == {a.id, b.id}
    assert Decimal(by_job[a.id]["batch_cost_usd"]) == a.cost().total.quantize(
        Decimal("1e-8"), rounding=ROUND_HALF_UP
    )
    csv_out = [line for line in cli("usage", a.id, "--format", "csv").stdout.splitlines() if line]
    assert (
        csv_out[0].startswith("provider,model,") and len(csv_out) == 3
    )  # header, one model, total

    prices = cli("prices", "--provider", "openai", "gpt-4o-mini-2024-07-18")
    assert prices.returncode == 0, prices.stderr
    assert (
        "gpt-4o-mini" in prices.stdout and "batch" in prices.stdout and "standard" in prices.stdout
    )
    assert cli("prices", "no-such-model").returncode == 2
