"""The price files the plugins ship: they load, cover the models, and are self-consistent.

The files come from the plugin registry, as the runner finds them (core tests never import a
provider SDK or a plugin package).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from polybatch.items import Usage
from polybatch.plugins import PluginRegistry, reset_registry
from polybatch.pricing import PriceRegistry, Rates, cost_of
from polybatch.pricing.registry import RATE_KEYS
from polybatch.provider_plugin import ProviderPlugin

D = Decimal
TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def files() -> list[Path]:
    """The price files of the plugins providing ``openai`` and ``anthropic``."""
    found = PluginRegistry().price_files(["openai", "anthropic"])
    assert [p.name for p in found] == ["prices.toml", "prices.toml"], found
    return found


@pytest.fixture(scope="module")
def bundled(files: list[Path]) -> PriceRegistry:
    return PriceRegistry.load(files=files)


@pytest.fixture
def plugin_registry(files: list[Path]) -> Iterator[PluginRegistry]:
    registry = PluginRegistry(load_entry_points=False)
    registry.add_plugin(ProviderPlugin(prices=files), name="prices")
    reset_registry(registry)
    yield registry
    reset_registry(None)


def test_load_defaults_to_the_plugins_price_files(
    plugin_registry: PluginRegistry, bundled: PriceRegistry
) -> None:
    loaded = PriceRegistry.load()
    assert len(loaded) == len(bundled) > 60


REQUIRED = {
    "openai": [
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
        "gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "text-embedding-3-small",
        "text-embedding-3-large",
    ],
    "azure": [
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
        "gpt-4o", "gpt-4o-mini", "o3", "o4-mini",
    ],
    "anthropic": [
        "claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1",
        "claude-opus-4", "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet",
        "claude-3-5-haiku",
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "model"), [(p, m) for p, models in REQUIRED.items() for m in models]
)
def test_models_are_priced_in_both_modes(bundled: PriceRegistry, provider: str, model: str) -> None:
    for mode in ("batch", "standard"):
        assert bundled.find(provider, model, mode, TODAY) is not None, (provider, model, mode)


def test_every_row_says_where_it_comes_from(bundled: PriceRegistry) -> None:
    for row in bundled:
        assert row.source and row.checked_on is not None, row.key


def test_batch_is_never_dearer_than_standard(bundled: PriceRegistry) -> None:
    for row in bundled:
        if row.mode != "batch":
            continue
        standard = bundled.price(
            row.provider, row.model, "standard", max(row.effective, date(2000, 1, 1))
        )
        pairs = [(row.rates, standard.rates)] + [
            (a.rates, b.rates) for a, b in zip(row.tiers, standard.tiers, strict=True)
        ]
        for batch_rates, standard_rates in pairs:
            for key in RATE_KEYS:
                b, s = getattr(batch_rates, key), getattr(standard_rates, key)
                assert (b is None) == (s is None) or key == "cached_input", (row.key, key)
                if b is not None and s is not None:
                    assert b <= s, (row.key, key)


def _halved(rates: Rates) -> Rates:
    return _scaled(rates, D("0.5"))


def test_anthropic_batch_is_half_of_standard_on_every_bucket(bundled: PriceRegistry) -> None:
    # Anthropic's batch docs: all usage, cache writes and reads included, at 50%
    for row in bundled:
        if row.provider != "anthropic" or row.mode != "batch":
            continue
        standard = bundled.price(
            "anthropic", row.model, "standard", max(row.effective, date(2000, 1, 1))
        )
        assert row.rates == _halved(standard.rates), row.key
        assert [t.above_input_tokens for t in row.tiers] == [
            t.above_input_tokens for t in standard.tiers
        ]
        for a, b in zip(row.tiers, standard.tiers, strict=True):
            assert a.rates == _halved(b.rates), row.key


def test_known_prices(bundled: PriceRegistry) -> None:
    mini = bundled.price("openai", "gpt-4o-mini-2024-07-18", "batch", TODAY)
    assert (mini.rates.input, mini.rates.output) == (D("0.075"), D("0.3"))
    azure = bundled.price("azure", "gpt-4o-mini-2024-07-18", "batch", TODAY)
    assert (azure.rates.input, azure.rates.output) == (D("0.075"), D("0.3"))
    haiku = bundled.price("anthropic", "claude-haiku-4-5-20251001", "standard", TODAY)
    assert haiku.rates == Rates(
        input=D("1"),
        output=D("5"),
        cached_input=D("0.1"),
        cache_write_5m=D("1.25"),
        cache_write_1h=D("2"),
    )


def test_dated_price_changes_in_the_bundled_data(bundled: PriceRegistry) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    before = bundled.price("openai", "o3", "standard", date(2025, 6, 9))
    after = bundled.price("openai", "o3", "standard", date(2025, 6, 10))
    assert cost_of(usage, before).total == D("50")  # 10 + 40
    assert cost_of(usage, after).total == D("10")  # 2 + 8
    # Claude Opus 4.6 had a >200k tier until 2026-03-13, flat pricing after
    long = Usage(input_tokens=300_000)
    tiered = bundled.price("anthropic", "claude-opus-4-6", "standard", date(2026, 3, 12))
    flat = bundled.price("anthropic", "claude-opus-4-6", "standard", date(2026, 3, 13))
    assert cost_of(long, tiered).total == D("3")  # 300k x 10
    assert cost_of(long, flat).total == D("1.5")  # 300k x 5


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
