"""Price shopping and the price and usage commands: ``polybatch.estimate(items, models=[...])``,
``polybatch estimate INPUT --compare ...``, ``polybatch prices`` and ``usage --by``."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

import polybatch
from polybatch import BatchItem, Comparison, Message
from polybatch.sandbox import SandboxServer
from polybatch.testing import run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
FOUR = [
    "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5",
    "gemini:gemini-2.5-flash",
    "mistral:mistral-small-latest",
]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(args, os.environ, cwd=cwd)


def _items() -> list[BatchItem]:
    return [
        BatchItem(
            custom_id="a", messages=[Message(role="user", content="Hello world")], max_tokens=10
        ),
        BatchItem(
            custom_id="b", messages=[Message(role="user", content="Hi!")], max_tokens=10, seed=7
        ),
    ]


def test_estimate_compares_providers_cheapest_first_without_submitting(
    sandbox_server: SandboxServer,
) -> None:
    rows = polybatch.estimate(_items(), models=FOUR)
    assert all(isinstance(r, Comparison) for r in rows)
    assert sorted(r.spec for r in rows) == sorted(FOUR)
    highs = [r.batch.high for r in rows if r.batch]
    assert len(highs) == 4 and highs == sorted(highs)
    by = {r.spec: r for r in rows}
    # Anthropic refuses the item with a seed, and says why; the others take both
    haiku = by["anthropic:claude-haiku-4-5"]
    assert [(x.custom_id, x.field) for x in haiku.refused] == [("b", "seed")]
    assert "Anthropic does not support 'seed'" in haiku.refused[0].reason
    assert haiku.requests == 1 and haiku.chunks == 1
    mini = by["openai:gpt-4o-mini"]
    assert (mini.requests, mini.chunks, mini.refused) == (2, 1, [])
    # gpt-4o-mini: inputs 3 + (2 + 4) = 9 and 3 + (2 + 4) = 9 tokens, 10 out each:
    # batch high 18 x 0.075 + 20 x 0.3 = 0.00000735; standard 18 x 0.15 + 20 x 0.6 = 0.0000147
    assert mini.batch is not None and mini.standard is not None
    assert (mini.batch.low, mini.batch.high) == (Decimal("0.00000135"), Decimal("0.00000735"))
    assert mini.standard.high == Decimal("0.0000147")
    assert mini.saving == (Decimal("0.00000135"), Decimal("0.00000735"))
    assert mini.currency == "USD"
    # nothing reached any provider
    assert sandbox_server.engine.requests_seen == []


def test_an_unpriced_model_comes_last_and_says_why() -> None:
    rows = polybatch.estimate(_items(), models=["openai:my-finetune", "openai:gpt-4o-mini"])
    assert [r.spec for r in rows] == ["openai:gpt-4o-mini", "openai:my-finetune"]
    assert rows[1].batch is None and rows[1].unpriced is not None
    assert "model 'my-finetune' is not in the price registry" in rows[1].unpriced


def test_profiles_can_be_compared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "polybatch.toml").write_text(
        '[profiles.cheap]\nmodel = "mistral:mistral-small-latest"\nmax_tokens = 5\n'
    )
    monkeypatch.chdir(tmp_path)
    rows = polybatch.estimate(["Hello there"], models=["cheap", "openai:gpt-4o-mini"])
    cheap = next(r for r in rows if r.profile == "cheap")
    assert cheap.spec == "mistral:mistral-small-latest"
    # the profile's max_tokens bounds the output: 5 tokens
    assert cheap.batch is not None and cheap.batch.max_output_tokens == 5


def test_cli_compare_prints_one_table_cheapest_first() -> None:
    out = cli("estimate", str(EXAMPLES), "--compare", ",".join(FOUR))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(line for line in lines if "provider:model" in line)
    for column in ("requests", "chunks", "refused", "batch cost", "synchronous cost", "saving"):
        assert column in header
    order = [next(i for i, line in enumerate(lines) if f" {spec} " in line) for spec in FOUR]
    assert len(set(order)) == 4
    assert "cheapest:" in out.stdout and "nothing was submitted" in out.stdout
    assert "USD" in out.stdout


def test_cli_compare_lists_refusals(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"custom_id": "s", "prompt": "Hello", "seed": 1})
        + "\n"
        + json.dumps({"custom_id": "t", "prompt": "Hello"})
        + "\n"
    )
    out = cli("estimate", str(path), "--compare", "anthropic:claude-haiku-4-5,openai:gpt-4o-mini")
    assert out.returncode == 0, out.stderr
    assert "anthropic:claude-haiku-4-5 refuses s: Anthropic does not support 'seed'" in out.stdout


# -- polybatch prices --------------------------------------------------------------------------


def test_prices_json_shows_the_row_in_force_and_its_origin() -> None:
    out = cli("prices", "o3", "--provider", "azure", "--at", "2025-05-01", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    batch = next(r for r in rows if r["mode"] == "batch")
    assert (batch["input"], batch["output"], batch["effective"]) == ("5", "20", "2025-04-16")
    assert batch["derived"] is True and batch["currency"] == "USD"
    assert batch["unit"] == "per 1M tokens"
    assert batch["origin"].startswith("bundled ") and batch["origin"].endswith("prices.toml")
    assert batch["checked_on"] == "2026-12-02" and batch["source"]
    later = json.loads(cli("prices", "o3", "--provider", "azure", "--format", "json").stdout)
    assert {r["input"] for r in later} == {"1", "2"}


def test_prices_csv_has_cache_write_columns_and_tiers() -> None:
    out = cli("prices", "claude-sonnet-4", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {"cache_write_5m", "cache_write_1h", "tiers", "derived", "origin"} <= set(rows[0])
    batch = next(r for r in rows if r["mode"] == "batch")
    assert (batch["cache_write_5m"], batch["cache_write_1h"]) == ("1.875", "3")
    assert batch["tiers"].startswith(">200000: input=3 ") and batch["derived"] == "true"


def test_prices_table_names_the_unit_and_a_user_override(tmp_path: Path) -> None:
    (tmp_path / "polybatch.toml").write_text(
        '[[prices.model]]\nprovider = "openai"\nname = "gpt-4o-mini"\n'
        'batch = { input = "0.01", output = "0.02" }\n'
    )
    out = cli("prices", "gpt-4o-mini", "--provider", "openai", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "per 1M tokens" in out.stdout and "input $/1M" in out.stdout
    batch = next(line for line in out.stdout.splitlines() if " batch " in line)
    assert "0.01" in batch and "user " in batch and "polybatch.toml [prices]" in batch
    standard = next(line for line in out.stdout.splitlines() if " standard " in line)
    assert "bundled polybatch_openai/prices.toml" in standard


def test_a_misspelt_provider_in_the_config_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "polybatch.toml").write_text(
        '[[prices.model]]\nprovider = "OpenAI"\nname = "gpt-4o-mini"\n'
        'batch = { input = "0.01", output = "0.02" }\n'
    )
    out = cli("prices", cwd=tmp_path)
    assert out.returncode == 2
    assert "key 'prices.model[1].provider': unknown provider 'OpenAI'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_usage_by_an_unknown_key_is_one_line_and_exit_2() -> None:
    out = cli("usage", "--by", "provider,colour")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: --by: cannot group by 'colour'; choose from provider, model, job, date, category"
    )


def test_compare_with_a_budget_marks_who_would_be_refused() -> None:
    # high ends: gpt-4o-mini 9 x 0.075 + 10 x 0.3 = 0.000003675 (under the cap);
    # Haiku 4.5 9 x 0.5 + 10 x 2.5 = 0.0000295 (over)
    rows = polybatch.estimate(
        _items()[:1],
        models=["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],
        limits=polybatch.JobOptions(max_cost=Decimal("0.00001")),
    )
    assert [(r.spec, r.over_budget) for r in rows] == [
        ("openai:gpt-4o-mini", False),
        ("anthropic:claude-haiku-4-5", True),
    ]
    out = cli(
        "estimate",
        str(EXAMPLES),
        "--compare",
        "openai:gpt-4o-mini,anthropic:claude-haiku-4-5",
        "--max-cost",
        "0.001",
    )
    assert out.returncode == 0, out.stderr
    assert "anthropic:claude-haiku-4-5: up to $0.003408 exceeds --max-cost $0.001" in out.stdout


def test_prices_all_marks_the_rows_in_force() -> None:
    rows = json.loads(
        cli("prices", "o3", "--provider", "openai", "--all", "--format", "json").stdout
    )
    in_force = {(r["mode"], r["effective"]): r["in_force"] for r in rows}
    assert in_force == {
        ("batch", "2025-04-16"): False,
        ("batch", "2025-06-10"): True,
        ("standard", "2025-04-16"): False,
        ("standard", "2025-06-10"): True,
    }


def test_a_job_below_a_providers_minimum_batch_size_is_flagged_not_cheapest() -> None:
    """Bedrock takes at least 100 records per job: 18 requests would be refused as a whole (and
    polybatch never pads), so the comparison says so and does not call it the cheapest."""
    rows = polybatch.estimate(
        [f"question {i}?" for i in range(18)],
        models=["bedrock:anthropic.claude-haiku-4-5-20251001-v1:0", "openai:gpt-4o-mini"],
    )
    by_spec = {r.spec: r for r in rows}
    bedrock = by_spec["bedrock:anthropic.claude-haiku-4-5-20251001-v1:0"]
    assert bedrock.blocked is not None and "at least 100" in bedrock.blocked
    assert by_spec["openai:gpt-4o-mini"].blocked is None
    assert rows[0].spec == "openai:gpt-4o-mini"
