"""Usage tables, their renderings, estimates, and properties of costs (exact, additive)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polybatch.errors import PriceNotFoundError
from polybatch.items import BatchItem, BatchResult, Message, ResultStatus, Usage
from polybatch.pricing import (
    Cost,
    PriceRegistry,
    PriceRow,
    Rates,
    Tier,
    UnpricedWarning,
    UsageRecord,
    cost_of,
    estimate_cost,
    render_table,
    usage_rows,
)

from .test_pricing import FIXTURE

D = Decimal
CREATED = date(2026, 1, 15)


@pytest.fixture
def registry(tmp_path: Path) -> PriceRegistry:
    path = tmp_path / "prices.toml"
    path.write_text(FIXTURE, encoding="utf-8")
    return PriceRegistry.load(files=[path])


def _result(
    provider: str, model: str | None, status: ResultStatus = "succeeded", **usage: int
) -> BatchResult:
    return BatchResult(
        custom_id="x", status=status, provider=provider, model=model, usage=Usage(**usage)
    )


def _records() -> list[Any]:
    return [
        # 1M in at 0.075 + 100k out at 0.30 = 0.105 batch; 0.15 + 0.06 = 0.21 standard
        (_result("openai", "gpt-4o-mini-2024-07-18", input_tokens=1_000_000, output_tokens=100_000),
         "job-1", CREATED),
        # failed with no usage: counted, costs nothing
        (_result("openai", "gpt-4o-mini", status="errored"), "job-1", CREATED),
        # failed with partial usage: still priced, 10k in -> 0.00075 batch, 0.0015 standard
        (_result("openai", "gpt-4o-mini", status="expired", input_tokens=10_000), "job-1",
         datetime(2026, 1, 15, 23, 0, tzinfo=UTC)),
        # tiers per request: batch 0.75 + 0.01125 and 0.225 + 0.0075; standard 1.5225 and 0.465
        (_result("anthropic", "claude-sonnet-4-5-20250929", input_tokens=250_000, output_tokens=1000),
         "job-2", CREATED),
        (_result("anthropic", "claude-sonnet-4-5", input_tokens=150_000, output_tokens=1000),
         "job-2", CREATED),
        # no price at all
        (_result("openai", "mystery-model", input_tokens=1000, output_tokens=10), "job-3", CREATED),
    ]  # fmt: skip


def test_usage_rows_by_provider_and_model(registry: PriceRegistry) -> None:
    with pytest.warns(UnpricedWarning, match="openai:mystery-model") as caught:
        rows = usage_rows(_records(), registry)
    # one warning per mode, both naming the model
    assert {str(w.message).split()[2] for w in caught} == {"batch", "standard"}
    assert [r.keys for r in rows] == [
        {"provider": "anthropic", "model": "claude-sonnet-4-5"},
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "openai", "model": "mystery-model"},
        {"provider": "TOTAL", "model": ""},
    ]
    sonnet, mini, mystery, total = rows
    assert (sonnet.batch_cost, sonnet.standard_cost, sonnet.saving) == (
        D("0.99375"),
        D("1.9875"),
        D("0.99375"),
    )
    assert (mini.requests_ok, mini.requests_failed) == (1, 2)
    assert (mini.input_tokens, mini.output_tokens) == (1_010_000, 100_000)
    assert (mini.batch_cost, mini.standard_cost, mini.saving) == (
        D("0.10575"),
        D("0.2115"),
        D("0.10575"),
    )
    # never $0 for a model without a price
    assert (mystery.batch_cost, mystery.standard_cost, mystery.saving) == (None, None, None)
    assert mystery.input_tokens == 1000
    assert total.total
    assert (total.requests_ok, total.requests_failed) == (4, 2)
    assert total.input_tokens == 1_000_000 + 10_000 + 250_000 + 150_000 + 1000
    # the total sums what is priced, and says that part is missing
    assert total.batch_cost == D("1.09950")
    assert total.standard_cost == D("2.199")
    assert total.partial == ("batch_cost_usd", "standard_cost_usd", "saving_usd")


def test_usage_rows_group_by_job_and_date(registry: PriceRegistry) -> None:
    with pytest.warns(UnpricedWarning):
        rows = usage_rows(_records(), registry, by=("job_id", "date"))
    assert [tuple(r.keys.values()) for r in rows] == [
        ("job-1", "2026-01-15"),
        ("job-2", "2026-01-15"),
        ("job-3", "2026-01-15"),
        ("TOTAL", ""),
    ]
    assert rows[0].batch_cost == D("0.10575")
    with pytest.raises(ValueError, match="cannot group by 'colour'"):
        usage_rows([], registry, by=("colour",))  # type: ignore[arg-type]


def test_rows_use_the_price_in_force_on_the_batch_date(registry: PriceRegistry) -> None:
    usage = {"input_tokens": 100_000, "output_tokens": 10_000}
    records = [
        UsageRecord("openai", "o3", True, Usage(**usage), "a-before", date(2025, 6, 9)),
        UsageRecord("openai", "o3-2025-04-16", True, Usage(**usage), "b-after", date(2025, 6, 10)),
    ]
    old, new, total = usage_rows(records, registry, by=("job_id",))
    assert (old.batch_cost, old.standard_cost) == (D("0.7"), D("1.4"))
    assert (new.batch_cost, new.standard_cost) == (D("0.14"), D("0.28"))
    assert total.saving == D("0.84")


def test_zero_usage_failure_of_an_unpriced_model_costs_zero_without_warning(
    registry: PriceRegistry,
) -> None:
    records = [(_result("openai", "mystery-model", status="errored"), "j", CREATED)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row, total = usage_rows(records, registry)
    assert (row.batch_cost, row.standard_cost, row.requests_failed) == (D(0), D(0), 1)
    assert total.partial == ()


def test_result_without_model_uses_the_fallback(registry: PriceRegistry) -> None:
    result = _result("openai", None, input_tokens=1_000_000)
    record = UsageRecord.from_result(result, "j", CREATED, model="gpt-4o-mini")
    row, _ = usage_rows([record], registry)
    assert row.keys["model"] == "gpt-4o-mini" and row.batch_cost == D("0.075")


def test_empty_records_give_a_zero_total(registry: PriceRegistry) -> None:
    (total,) = usage_rows([], registry)
    assert total.total and total.batch_cost == D(0)


# -- rendering -------------------------------------------------------------------------------


def _rows(registry: PriceRegistry) -> list[Any]:
    with pytest.warns(UnpricedWarning):
        return usage_rows(_records(), registry)


def test_render_json(registry: PriceRegistry) -> None:
    text = render_table(_rows(registry), "json", digits=4)

    def no_floats(value: str) -> Any:
        raise AssertionError(f"float in JSON: {value}")

    data = json.loads(text, parse_float=no_floats)
    assert data[0] == {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "requests_ok": 2,
        "requests_failed": 0,
        "input_tokens": 400_000,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
        "output_tokens": 2000,
        "batch_cost_usd": "0.9938",  # 0.99375 rounded half-up
        "standard_cost_usd": "1.9875",
        "saving_usd": "0.9938",
        "currency": "USD",
    }
    assert data[2]["batch_cost_usd"] == "unpriced"
    assert data[3]["batch_cost_usd"] == "1.0995 + unpriced"
    exact = json.loads(render_table(_rows(registry), "json", digits=None))
    assert exact[1]["batch_cost_usd"] == "0.10575"


def test_render_csv(registry: PriceRegistry) -> None:
    text = render_table(_rows(registry), "csv", digits=2)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "provider",
        "model",
        "requests_ok",
        "requests_failed",
        "input_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "output_tokens",
        "batch_cost_usd",
        "standard_cost_usd",
        "saving_usd",
        "currency",
    ]
    assert rows[1]["batch_cost_usd"] == "0.11"  # 0.10575
    assert rows[1]["standard_cost_usd"] == "0.21"  # 0.2115
    assert rows[2]["standard_cost_usd"] == "unpriced"
    assert rows[3]["provider"] == "TOTAL"
    assert rows[3]["standard_cost_usd"] == "2.20 + unpriced"


def test_render_table(registry: PriceRegistry) -> None:
    text = render_table(_rows(registry), "table", digits=3)
    lines = text.splitlines()
    assert "Provider" in lines[1] and "Batch $" in lines[1] and "Saving $" in lines[1]
    assert any("mystery-model" in line and line.count("unpriced") == 3 for line in lines)
    assert any(
        "claude-sonnet-4-5" in line and "0.994" in line and "400,000" in line for line in lines
    )
    total_line = next(line for line in lines if "TOTAL" in line)
    assert "1.100 + unpriced" in total_line
    # a rule separates the total from the groups
    assert lines[lines.index(total_line) - 1].startswith("+")


def test_render_unknown_format(registry: PriceRegistry) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render_table(_rows(registry), "xml")  # type: ignore[arg-type]


# -- estimates -------------------------------------------------------------------------------


def _items() -> list[BatchItem]:
    return [
        # 3 + (2 + 4) = 9 input tokens; 100 output at most
        BatchItem(messages=[Message(role="user", content="Hello world")], max_tokens=100),
        # 3 + (3 + 4) + (2 + 4) = 16 input tokens; the default 50 output at most
        BatchItem(
            messages=[
                Message(role="system", content="Be brief."),
                Message(role="user", content="Hi!"),
            ]
        ),
    ]


def test_estimate_cost_range(registry: PriceRegistry) -> None:
    estimate = estimate_cost(
        _items(), "openai", "gpt-4o-mini", registry, default_max_tokens=50, on=CREATED
    )
    assert (estimate.items, estimate.input_tokens, estimate.max_output_tokens) == (2, 25, 150)
    # 25 x 0.075 / 1M, then + 150 x 0.30 / 1M
    assert estimate.low == D("0.000001875")
    assert estimate.high == D("0.000046875")
    assert estimate.mode == "batch"
    assert "prompt_tokens" in estimate.method and "max_tokens" in estimate.method


def test_estimate_applies_tiers_per_item_and_item_models(registry: PriceRegistry) -> None:
    long_text = " ".join(["word"] * 250_000)  # 3 + 250000 + 4 input tokens: above the tier
    items = [
        BatchItem(messages=[Message(role="user", content=long_text)], max_tokens=1000),
        BatchItem(messages=[Message(role="user", content="Hi!")], model="claude-haiku-4-5"),
    ]
    estimate = estimate_cost(
        items, "anthropic", "claude-sonnet-4-5", registry, default_max_tokens=10, on=CREATED
    )
    # 250007 x 3 (tier) = 0.750021; haiku 9 x 0.5 = 0.0000045
    assert estimate.low == D("0.7500255")
    # + 1000 x 11.25 (tier) = 0.01125 and 10 x 2.5 = 0.000025
    assert estimate.high == D("0.7613005")


def test_estimate_without_a_price_raises(registry: PriceRegistry) -> None:
    with pytest.raises(PriceNotFoundError, match="mystery"):
        estimate_cost(_items(), "openai", "mystery", registry, default_max_tokens=10)


# -- properties ------------------------------------------------------------------------------

rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=0, max_value=5_000_000)
usages = st.builds(
    Usage,
    input_tokens=tokens,
    cached_input_tokens=tokens,
    cache_write_tokens=tokens,
    cache_write_1h_tokens=tokens,
    output_tokens=tokens,
)
rate_sets = st.builds(
    Rates,
    input=rates,
    output=rates,
    cached_input=st.none() | rates,
    cache_write_5m=st.none() | rates,
    cache_write_1h=st.none() | rates,
)


def _row(r: Rates, tiers: tuple[Tier, ...] = ()) -> PriceRow:
    return PriceRow(provider="p", model="m", mode="batch", rates=r, tiers=tiers)


@given(rate_sets, usages, usages)
def test_cost_is_additive_without_tiers(r: Rates, a: Usage, b: Usage) -> None:
    row = _row(r)
    assert cost_of(a, row) + cost_of(b, row) == cost_of(a + b, row)


@given(rate_sets, rate_sets, usages, st.integers(min_value=0, max_value=10_000_000))
def test_costs_are_decimal_never_float(r: Rates, tier: Rates, u: Usage, threshold: int) -> None:
    cost = cost_of(u, _row(r, (Tier(threshold, tier),)))
    for value in (cost.input, cost.cached_input, cost.cache_write, cost.output, cost.total):
        assert type(value) is Decimal
        assert value >= 0
    assert isinstance(Cost().total, Decimal)


@given(rate_sets, usages)
def test_tier_rates_apply_only_above_the_threshold(r: Rates, u: Usage) -> None:
    doubled = _scaled(r, D(2))
    row = _row(r, (Tier(u.total_input_tokens, doubled),))
    # at the threshold exactly, base rates; one token lower, the tier
    assert cost_of(u, row) == cost_of(u, _row(r))
    if u.total_input_tokens > 0:
        lower = _row(r, (Tier(u.total_input_tokens - 1, doubled),))
        assert cost_of(u, lower).total == cost_of(u, _row(r)).total * 2


def _scaled(rates: Rates, factor: Decimal) -> Rates:
    """Every rate of ``rates`` times ``factor`` (missing rates stay missing)."""

    def each(value: Decimal | None) -> Decimal | None:
        return None if value is None else value * factor

    return Rates(
        input=rates.input * factor,
        output=rates.output * factor,
        cached_input=each(rates.cached_input),
        cache_write_5m=each(rates.cache_write_5m),
        cache_write_1h=each(rates.cache_write_1h),
    )
