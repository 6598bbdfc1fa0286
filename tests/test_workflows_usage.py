"""``polybatch usage --by category`` and ``usage_table(by=("category",))``: a row per token
category (prompt, cached, completion, reasoning where present, total), each with its cost."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

import polybatch
from polybatch import BatchResult, Usage
from polybatch.pricing import UnpricedWarning, cost_of, price_registry
from polybatch.pricing.categories import category_rows, render_categories
from polybatch.pricing.tables import UsageRecord
from polybatch.testing import CliOutcome

FAKE = "fake:echo"
DAY = date(2026, 12, 1)


def record(usage: Usage, model: str = "echo") -> UsageRecord:
    result = BatchResult(
        custom_id="x", status="succeeded", usage=usage, provider="fake", model=model
    )
    return UsageRecord.from_result(result, "job-1", DAY)


def test_categories_add_up_and_reasoning_is_inside_completion() -> None:
    registry = price_registry(providers=["fake"])
    usages = [
        Usage(input_tokens=100, cached_input_tokens=40, output_tokens=60, reasoning_tokens=20),
        Usage(input_tokens=10, output_tokens=5),
    ]
    rows = category_rows([record(u) for u in usages], registry)
    by_name = {r.category: r for r in rows}
    assert list(by_name) == ["prompt", "cached", "completion", "reasoning", "total"]
    assert [by_name[n].tokens for n in by_name] == [110, 40, 65, 20, 215]
    price = registry.price("fake", "echo", "batch", DAY)
    costs = [cost_of(u, price) for u in usages]
    assert by_name["prompt"].batch.value == sum(c.input for c in costs)
    assert by_name["completion"].batch.value == sum(c.output for c in costs)
    # reasoning: its share of the first request's output cost; not added to the total again
    assert by_name["reasoning"].batch.value == costs[0].output * 20 / 60
    assert by_name["total"].batch.value == sum(c.total for c in costs)
    parts = ("prompt", "cached", "completion")
    assert (
        sum((by_name[n].batch.value or Decimal(0)) for n in parts) == by_name["total"].batch.value
    )


def test_unpriced_model_is_never_zero() -> None:
    registry = price_registry(providers=["fake"])
    with pytest.warns(UnpricedWarning, match="no-such-model"):
        rows = category_rows([record(Usage(input_tokens=5), model="no-such-model")], registry)
    flat = json.loads(render_categories(rows, fmt="json"))
    assert {row["batch_cost_usd"] for row in flat} == {"unpriced"}


def test_usage_table_by_category_in_python_and_the_cli(
    polybatch_cli: Callable[..., CliOutcome],
) -> None:
    job = polybatch.submit(["Hello there?", "Why?"], FAKE)
    job.wait()
    rows = json.loads(
        polybatch.usage_table([job], by=("model", "category"), fmt="json", digits=None)
    )
    assert [(r["model"], r["category"]) for r in rows] == [
        ("echo", "prompt"),
        ("echo", "cached"),
        ("echo", "completion"),
        ("echo", "total"),
    ]
    usage = job.usage()
    assert [r["tokens"] for r in rows] == [
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens,
        usage.total_tokens,
    ]
    assert Decimal(rows[-1]["batch_cost_usd"]) == job.cost().total
    out = polybatch_cli("usage", job.id, "--by", "category")
    assert out.exit_code == 0, out.stderr
    assert "Category" in out.stdout and "completion" in out.stdout
    csv_out = polybatch_cli("usage", "--by", "category", "--format", "csv")
    assert (
        csv_out.stdout.splitlines()[0]
        == "category,tokens,batch_cost_usd,standard_cost_usd,currency"
    )
    bad = polybatch_cli("usage", "--by", "categories")
    assert bad.exit_code == 2 and "category" in bad.stderr and "Traceback" not in bad.stderr
