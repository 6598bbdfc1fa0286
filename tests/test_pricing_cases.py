"""Forty-odd costs computed by hand from the published prices, checked against the registry.

Each case names the provider, model, mode and day, the usage of ONE request, and the expected
USD with the arithmetic in a comment (tokens x USD per 1M tokens / 1,000,000). Rates are those of
the bundled price files (each row's ``source`` says where they come from). Then estimates whose
range must hold the worst case, user overrides, and unpriced models.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from polybatch.errors import ConfigError, PriceNotFoundError
from polybatch.formats import usage as decode_usage
from polybatch.items import BatchItem, Message, Usage
from polybatch.pricing import (
    Mode,
    PriceRegistry,
    PriceTargetError,
    cost_of,
    estimate_cost,
)

from .test_pricing_files import bundled_price_files

TODAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def bundled() -> PriceRegistry:
    return PriceRegistry.load(files=bundled_price_files())


# (id, provider, model, mode, day, usage, expected USD)
CASES: list[tuple[str, str, str, Mode, date, dict[str, int], str]] = [
    # -- plain input and output ------------------------------------------------------------
    # 1,000,000 x 0.075 = 0.075; 100,000 x 0.30 = 0.03
    (
        "4o-mini-batch",
        "openai",
        "gpt-4o-mini",
        "batch",
        TODAY,
        {"input_tokens": 1_000_000, "output_tokens": 100_000},
        "0.105",
    ),
    # 1,000,000 x 0.15 = 0.15; 100,000 x 0.60 = 0.06
    (
        "4o-mini-standard",
        "openai",
        "gpt-4o-mini",
        "standard",
        TODAY,
        {"input_tokens": 1_000_000, "output_tokens": 100_000},
        "0.21",
    ),
    # a dated snapshot name prices as its model: same as above
    (
        "4o-mini-snapshot",
        "openai",
        "gpt-4o-mini-2024-07-18",
        "batch",
        TODAY,
        {"input_tokens": 1_000_000, "output_tokens": 100_000},
        "0.105",
    ),
    # cache reads in batch: 600,000 x 0.075 = 0.045; 400,000 x 0.075 (batch cached) = 0.03
    (
        "4o-mini-cached",
        "openai",
        "gpt-4o-mini",
        "batch",
        TODAY,
        {"input_tokens": 600_000, "cached_input_tokens": 400_000},
        "0.075",
    ),
    # -- cache writes: the issue's gpt-6-sol case and the batch discount ---------------------
    # 10,000 cache-write tokens x 1.25 (batch cache write) = 0.0125, not 10,000 x 1 = 0.01
    (
        "6-sol-write-batch",
        "openai",
        "gpt-6-sol",
        "batch",
        TODAY,
        {"cache_write_tokens": 10_000},
        "0.0125",
    ),
    # standard: 10,000 x 2.5 = 0.025 (batch is exactly half)
    (
        "6-sol-write-standard",
        "openai",
        "gpt-6-sol",
        "standard",
        TODAY,
        {"cache_write_tokens": 10_000},
        "0.025",
    ),
    # 10,000 x 1.25 = 0.0125; 5,000 x 1 = 0.005; 1,000 x 5 = 0.005
    (
        "6-sol-mixed",
        "openai",
        "gpt-6-sol",
        "batch",
        TODAY,
        {"cache_write_tokens": 10_000, "input_tokens": 5_000, "output_tokens": 1_000},
        "0.0225",
    ),
    # 50,000 cache reads x 0.1 = 0.005
    ("6-sol-read", "openai", "gpt-6-sol", "batch", TODAY, {"cached_input_tokens": 50_000}, "0.005"),
    # -- long-context tiers (per request, on total input) ------------------------------------
    # 300,000 > 272,000: tier rates: 300,000 x 2 = 0.6; 1,000 x 7.5 = 0.0075
    (
        "6-sol-tier",
        "openai",
        "gpt-6-sol",
        "batch",
        TODAY,
        {"input_tokens": 300_000, "output_tokens": 1_000},
        "0.6075",
    ),
    # exactly 272,000 is not above the threshold: 272,000 x 1 = 0.272
    (
        "6-sol-at-threshold",
        "openai",
        "gpt-6-sol",
        "batch",
        TODAY,
        {"input_tokens": 272_000},
        "0.272",
    ),
    # 272,001 is: 272,001 x 2 = 0.544002
    (
        "6-sol-over-threshold",
        "openai",
        "gpt-6-sol",
        "batch",
        TODAY,
        {"input_tokens": 272_001},
        "0.544002",
    ),
    # the issue's Anthropic case: a 20k-token prompt written to the 1-hour cache, 107 tokens out:
    # 20,000 x 3 (batch 1h write = 2 x 3 / 2) = 0.06; 107 x 7.5 = 0.0008025
    (
        "sonnet-4-1h-write",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"cache_write_1h_tokens": 20_000, "output_tokens": 107},
        "0.0608025",
    ),
    # standard: 20,000 x 6 = 0.12; 107 x 15 = 0.001605
    (
        "sonnet-4-1h-write-standard",
        "anthropic",
        "claude-sonnet-4",
        "standard",
        TODAY,
        {"cache_write_1h_tokens": 20_000, "output_tokens": 107},
        "0.121605",
    ),
    # 5-minute write: 20,000 x 1.875 (1.25 x 3 / 2) = 0.0375
    (
        "sonnet-4-5m-write",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"cache_write_tokens": 20_000},
        "0.0375",
    ),
    # 20,000 x 0.15 = 0.003; 1,000 x 1.5 = 0.0015; 500 x 7.5 = 0.00375
    (
        "sonnet-4-read",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"cached_input_tokens": 20_000, "input_tokens": 1_000, "output_tokens": 500},
        "0.00825",
    ),
    # the new Sonnet 4 long-context tier: 250,000 x 3 = 0.75; 2,000 x 11.25 = 0.0225
    (
        "sonnet-4-tier-batch",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"input_tokens": 250_000, "output_tokens": 2_000},
        "0.7725",
    ),
    # standard: 250,000 x 6 = 1.5; 2,000 x 22.5 = 0.045
    (
        "sonnet-4-tier-standard",
        "anthropic",
        "claude-sonnet-4-20250514",
        "standard",
        TODAY,
        {"input_tokens": 250_000, "output_tokens": 2_000},
        "1.545",
    ),
    # just under: 199,999 x 1.5 = 0.2999985; 2,000 x 7.5 = 0.015
    (
        "sonnet-4-under-tier",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"input_tokens": 199_999, "output_tokens": 2_000},
        "0.3149985",
    ),
    # cache reads count toward the threshold: 150,000 + 60,000 = 210,000 > 200,000:
    # 150,000 x 3 = 0.45; 60,000 x 0.3 = 0.018
    (
        "sonnet-4-tier-with-reads",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"input_tokens": 150_000, "cached_input_tokens": 60_000},
        "0.468",
    ),
    # a long 1h write: 210,000 x 6 (tier 1h write, batch) = 1.26
    (
        "sonnet-4-tier-1h-write",
        "anthropic",
        "claude-sonnet-4",
        "batch",
        TODAY,
        {"cache_write_1h_tokens": 210_000},
        "1.26",
    ),
    # Haiku 4.5 batch: 100,000 x 1 (1h write) = 0.1
    (
        "haiku-4-5-1h",
        "anthropic",
        "claude-haiku-4-5",
        "batch",
        TODAY,
        {"cache_write_1h_tokens": 100_000},
        "0.1",
    ),
    # 100,000 x 0.625 (5m write) = 0.0625
    (
        "haiku-4-5-5m",
        "anthropic",
        "claude-haiku-4-5",
        "batch",
        TODAY,
        {"cache_write_tokens": 100_000},
        "0.0625",
    ),
    # every bucket at once: 10,000 x 0.625 = 0.00625; 10,000 x 1 = 0.01; 10,000 x 0.05 = 0.0005;
    # 10,000 x 0.5 = 0.005; 1,000 x 2.5 = 0.0025
    (
        "haiku-4-5-all-buckets",
        "anthropic",
        "claude-haiku-4-5",
        "batch",
        TODAY,
        {
            "cache_write_tokens": 10_000,
            "cache_write_1h_tokens": 10_000,
            "cached_input_tokens": 10_000,
            "input_tokens": 10_000,
            "output_tokens": 1_000,
        },
        "0.02425",
    ),
    # -- reasoning tokens are inside output, never priced twice -------------------------------
    # 1,000 x 0.625 = 0.000625; 3,000 (2,500 of them reasoning) x 5 = 0.015
    (
        "gpt-5-reasoning",
        "openai",
        "gpt-5",
        "batch",
        TODAY,
        {"input_tokens": 1_000, "output_tokens": 3_000, "reasoning_tokens": 2_500},
        "0.015625",
    ),
    # o3 after its cut: 2,000 x 1 = 0.002; 5,000 (4,000 reasoning) x 4 = 0.02
    (
        "o3-reasoning",
        "openai",
        "o3",
        "batch",
        TODAY,
        {"input_tokens": 2_000, "output_tokens": 5_000, "reasoning_tokens": 4_000},
        "0.022",
    ),
    # Gemini thinking billed as output: 10,000 x 0.15 = 0.0015; 1,500 x 1.25 = 0.001875
    (
        "gemini-flash-thinking",
        "gemini",
        "gemini-2.5-flash",
        "batch",
        TODAY,
        {"input_tokens": 10_000, "output_tokens": 1_500, "reasoning_tokens": 1_200},
        "0.003375",
    ),
    # Gemini 2.5 Pro above 200k: 300,000 x 1.25 = 0.375; 1,000 x 7.5 = 0.0075
    (
        "gemini-pro-tier",
        "gemini",
        "gemini-2.5-pro",
        "batch",
        TODAY,
        {"input_tokens": 300_000, "output_tokens": 1_000},
        "0.3825",
    ),
    # Gemini cache hits in batch cost the standard cached rate: 100,000 x 0.03 = 0.003
    (
        "gemini-flash-cached",
        "gemini",
        "gemini-2.5-flash",
        "batch",
        TODAY,
        {"cached_input_tokens": 100_000},
        "0.003",
    ),
    # -- embeddings (input only) --------------------------------------------------------------
    # 1,000,000 x 0.01 = 0.01
    (
        "embed-small-batch",
        "openai",
        "text-embedding-3-small",
        "batch",
        TODAY,
        {"input_tokens": 1_000_000},
        "0.01",
    ),
    # 250,000 x 0.13 = 0.0325
    (
        "embed-large-standard",
        "openai",
        "text-embedding-3-large",
        "standard",
        TODAY,
        {"input_tokens": 250_000},
        "0.0325",
    ),
    # Azure embeddings, priced since issue 17: 2,000,000 x 0.01 = 0.02
    (
        "azure-embed-small-batch",
        "azure",
        "text-embedding-3-small",
        "batch",
        TODAY,
        {"input_tokens": 2_000_000},
        "0.02",
    ),
    # -- dated rows before and after a price change --------------------------------------------
    # o3 before its 2025-06-10 cut: 1,000 x 10 = 0.01; 1,000 x 40 = 0.04
    (
        "o3-before-cut",
        "openai",
        "o3",
        "standard",
        date(2025, 5, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        "0.05",
    ),
    # on the day of the cut: 1,000 x 2 = 0.002; 1,000 x 8 = 0.008
    (
        "o3-cut-day",
        "openai",
        "o3",
        "standard",
        date(2025, 6, 10),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        "0.01",
    ),
    # the day before, in batch: 1,000 x 5 = 0.005; 1,000 x 20 = 0.02
    (
        "o3-batch-day-before",
        "openai",
        "o3",
        "batch",
        date(2025, 6, 9),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        "0.025",
    ),
    # Azure o3 had no pre-cut period before issue 17: 1,000,000 x 5 = 5
    (
        "azure-o3-before-cut",
        "azure",
        "o3",
        "batch",
        date(2025, 5, 1),
        {"input_tokens": 1_000_000},
        "5",
    ),
    # after: 1,000,000 x 1 = 1
    (
        "azure-o3-after-cut",
        "azure",
        "o3",
        "batch",
        date(2026, 1, 1),
        {"input_tokens": 1_000_000},
        "1",
    ),
    # mistral-small-latest before its 2026-03-16 move: 1M x 0.05 + 1M x 0.15 = 0.2
    (
        "mistral-small-before",
        "mistral",
        "mistral-small-latest",
        "batch",
        date(2026, 1, 1),
        {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
        "0.2",
    ),
    # after: 1M x 0.075 + 1M x 0.3 = 0.375
    (
        "mistral-small-after",
        "mistral",
        "mistral-small-latest",
        "batch",
        date(2026, 3, 16),
        {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
        "0.375",
    ),
    # mistral-large-latest (priced since issue 17): Large 2 then Large 3: 1M x 1 = 1
    (
        "mistral-large-before",
        "mistral",
        "mistral-large-latest",
        "batch",
        date(2025, 11, 1),
        {"input_tokens": 1_000_000},
        "1",
    ),
    # 1M x 0.25 = 0.25
    (
        "mistral-large-after",
        "mistral",
        "mistral-large-latest",
        "batch",
        date(2026, 1, 1),
        {"input_tokens": 1_000_000},
        "0.25",
    ),
    # mistral-medium-3 is Medium 3 ($0.4 / $2), no longer Medium 3.5: 1M x 0.2 + 1M x 1 = 1.2
    (
        "mistral-medium-3",
        "mistral",
        "mistral-medium-3",
        "batch",
        TODAY,
        {"input_tokens": 1_000_000, "output_tokens": 1_000_000},
        "1.2",
    ),
    # Opus 4.6's tier until 2026-03-13: 250,000 x 5 = 1.25
    (
        "opus-4-6-tier-before",
        "anthropic",
        "claude-opus-4-6",
        "batch",
        date(2026, 1, 1),
        {"input_tokens": 250_000},
        "1.25",
    ),
    # then flat across the window: 250,000 x 2.5 = 0.625
    (
        "opus-4-6-flat-after",
        "anthropic",
        "claude-opus-4-6",
        "batch",
        date(2026, 3, 13),
        {"input_tokens": 250_000},
        "0.625",
    ),
    # Groq's batch does not stack with caching: 1,000,000 cached x 0.0375 (= batch input) = 0.0375
    (
        "groq-no-stacking",
        "groq",
        "openai/gpt-oss-20b",
        "batch",
        TODAY,
        {"cached_input_tokens": 1_000_000},
        "0.0375",
    ),
    # gpt-5.1, priced since issue 17 (batch derived): 1,000 x 0.625 + 1,000 x 5 = 0.005625
    (
        "gpt-5-1",
        "openai",
        "gpt-5.1",
        "batch",
        TODAY,
        {"input_tokens": 1_000, "output_tokens": 1_000},
        "0.005625",
    ),
]


@pytest.mark.parametrize(
    ("provider", "model", "mode", "day", "usage", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hand_computed_cost(
    bundled: PriceRegistry,
    provider: str,
    model: str,
    mode: Mode,
    day: date,
    usage: dict[str, int],
    expected: str,
) -> None:
    price = bundled.price(provider, model, mode, day)
    assert cost_of(Usage(**usage), price).total == D(expected)


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


# -- unpriced models: never $0 ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "day", "why"),
    [
        # a model no file prices
        ("openai", "my-private-finetune", TODAY, "no price for model 'my-private-finetune'"),
        # a priced model before its first period (o3 starts 2025-04-16)
        ("openai", "o3", date(2025, 1, 1), "its batch prices start on 2025-04-16"),
        # a provider with no bundled rows for the model
        ("mistral", "gpt-4o-mini", TODAY, "no price for model 'gpt-4o-mini' of provider 'mistral'"),
    ],
)
def test_unpriced_is_an_error_not_zero(
    bundled: PriceRegistry, provider: str, model: str, day: date, why: str
) -> None:
    assert bundled.find(provider, model, "batch", day) is None
    with pytest.raises(PriceNotFoundError, match=why):
        bundled.price(provider, model, "batch", day)


# -- estimates hold the worst case -------------------------------------------------------------


def _prompt(tokens: int, **part: Any) -> list[Message]:
    # prompt_tokens = 3 (prompt) + 4 (message) + words: 20,000 tokens for 19,993 words
    text = " ".join(["word"] * (tokens - 7))
    return [Message(role="user", content=[{"type": "text", "text": text, **part}])]


def test_issue_case_one_hour_cache_write_is_inside_the_estimate(bundled: PriceRegistry) -> None:
    item = BatchItem(
        messages=_prompt(20_000, cache_control={"type": "ephemeral", "ttl": "1h"}),
        max_tokens=107,
    )
    est = estimate_cost([item], "anthropic", "claude-sonnet-4", bundled, default_max_tokens=1)
    # high: 20,000 x 3 (1h write) + 107 x 7.5 = 0.0608025 (it was 20,000 x 1.5 + ... = 0.0308025)
    assert est.high == D("0.0608025")
    # low: a cache hit is possible (marked, >= 1,024 tokens): 20,000 x 0.15 = 0.003
    assert est.low == D("0.003")
    worst = cost_of(
        Usage(cache_write_1h_tokens=20_000, output_tokens=107),
        bundled.price("anthropic", "claude-sonnet-4", "batch", TODAY),
    ).total
    assert est.low <= worst <= est.high


def test_five_minute_marker_uses_the_five_minute_rate(bundled: PriceRegistry) -> None:
    item = BatchItem(messages=_prompt(20_000, cache_control={"type": "ephemeral"}), max_tokens=100)
    est = estimate_cost([item], "anthropic", "claude-sonnet-4", bundled, default_max_tokens=1)
    # 20,000 x 1.875 = 0.0375; 100 x 7.5 = 0.00075
    assert est.high == D("0.03825")


def test_unmarked_anthropic_prompt_is_plain_input(bundled: PriceRegistry) -> None:
    item = BatchItem(messages=_prompt(20_000), max_tokens=100)
    est = estimate_cost([item], "anthropic", "claude-sonnet-4", bundled, default_max_tokens=1)
    # no cache_control: 20,000 x 1.5 = 0.03; + 100 x 7.5 = 0.00075; low uncached: 0.03
    assert (est.low, est.high) == (D("0.03"), D("0.03075"))


def test_automatic_cache_writes_are_inside_the_estimate(bundled: PriceRegistry) -> None:
    # gpt-6-sol caches by itself and prices cache writes: the high end prices input as writes
    item = BatchItem(messages=_prompt(10_000), max_tokens=100)
    est = estimate_cost([item], "openai", "gpt-6-sol", bundled, default_max_tokens=1)
    # 10,000 x 1.25 = 0.0125; 100 x 5 = 0.0005; low: 10,000 x 0.1 (cache read) = 0.001
    assert (est.low, est.high) == (D("0.001"), D("0.013"))


def test_no_max_tokens_means_the_models_output_limit(bundled: PriceRegistry) -> None:
    item = BatchItem(messages=[Message(role="user", content="Hello world")])
    est = estimate_cost(
        [item], "openai", "gpt-4o-mini", bundled, default_max_tokens=50, sends_default=False
    )
    # input 3 + (2 + 4) = 9 tokens x 0.075 = 0.000000675; output up to 16,384 x 0.3 = 0.0049152
    assert est.max_output_tokens == 16_384
    assert est.high == D("0.004915875")
    # a provider that sends its default (Anthropic) is bounded by that default: 50 x 0.3 = 0.000015
    sent = estimate_cost([item], "openai", "gpt-4o-mini", bundled, default_max_tokens=50)
    assert sent.high == D("0.000015675")


def test_a_thinking_budget_outside_max_tokens_is_added(bundled: PriceRegistry) -> None:
    item = BatchItem(
        messages=[Message(role="user", content="Hello world")],
        max_tokens=100,
        extra={"generationConfig": {"thinkingConfig": {"thinkingBudget": 900}}},
    )
    est = estimate_cost([item], "gemini", "gemini-2.5-flash", bundled, default_max_tokens=1)
    # 9 x 0.15 = 0.00000135; (100 + 900) x 1.25 = 0.00125
    assert est.max_output_tokens == 1_000
    assert est.high == D("0.00125135")


# -- user overrides ----------------------------------------------------------------------------


def _with_user(tmp_path: Path, text: str) -> PriceRegistry:
    user = tmp_path / "my-prices.toml"
    user.write_text(text, encoding="utf-8")
    return PriceRegistry.load(
        files=bundled_price_files(),
        user_file=user,
        known_providers=["openai", "azure", "groq", "anthropic", "gemini", "mistral"],
    )


def test_user_row_without_effective_wins_from_always(tmp_path: Path) -> None:
    reg = _with_user(
        tmp_path,
        '[[model]]\nprovider = "openai"\nname = "gpt-4o-mini"\n'
        'batch = { input = "0.05", output = "0.2" }\n',
    )
    # the bundled row is dated 2024-07-18; the user's undated row still wins on every day:
    # 1,000,000 x 0.05 = 0.05
    for day in (date(2024, 7, 18), TODAY):
        price = reg.price("openai", "gpt-4o-mini", "batch", day)
        assert price.user and cost_of(Usage(input_tokens=1_000_000), price).total == D("0.05")
    # standard is not overridden: 1,000,000 x 0.15 = 0.15
    standard = reg.price("openai", "gpt-4o-mini", "standard", TODAY)
    assert not standard.user and cost_of(Usage(input_tokens=1_000_000), standard).total == D("0.15")


def test_user_row_with_effective_wins_from_that_date(tmp_path: Path) -> None:
    reg = _with_user(
        tmp_path,
        '[[model]]\nprovider = "openai"\nname = "gpt-4o-mini"\neffective = 2026-06-01\n'
        'batch = { input = "0.05", output = "0.2" }\n',
    )
    before = reg.price("openai", "gpt-4o-mini", "batch", date(2026, 5, 31))
    after = reg.price("openai", "gpt-4o-mini", "batch", date(2026, 6, 1))
    # before: bundled 1,000,000 x 0.075 = 0.075; from 2026-06-01: 1,000,000 x 0.05 = 0.05
    assert cost_of(Usage(input_tokens=1_000_000), before).total == D("0.075")
    assert cost_of(Usage(input_tokens=1_000_000), after).total == D("0.05")


def test_user_row_beats_later_bundled_periods(tmp_path: Path) -> None:
    # o3's bundled rows change on 2025-06-10; a user row from 2025-05-01 wins after that too
    reg = _with_user(
        tmp_path,
        '[[price]]\nprovider = "openai"\nmodel = "o3"\nmode = "batch"\neffective = 2025-05-01\n'
        'input = "0.5"\noutput = "2"\n',
    )
    # 1,000 x 0.5 + 1,000 x 2 = 0.0025 on both sides of the bundled change
    for day in (date(2025, 5, 1), date(2025, 6, 10), TODAY):
        price = reg.price("openai", "o3", "batch", day)
        assert cost_of(Usage(input_tokens=1_000, output_tokens=1_000), price).total == D("0.0025")
    # before the user's date the bundled launch price applies: 1,000 x 5 + 1,000 x 20 = 0.025
    early = reg.price("openai", "o3", "batch", date(2025, 4, 20))
    assert cost_of(Usage(input_tokens=1_000, output_tokens=1_000), early).total == D("0.025")


def test_user_row_naming_an_alias_overrides_its_model(tmp_path: Path) -> None:
    reg = _with_user(
        tmp_path,
        '[[model]]\nprovider = "openai"\nname = "gpt-4o-mini-2024-07-18"\n'
        'batch = { input = "0.01", output = "0.02" }\n',
    )
    price = reg.price("openai", "gpt-4o-mini", "batch", TODAY)
    # 1,000,000 x 0.01 = 0.01
    assert price.model == "gpt-4o-mini"
    assert cost_of(Usage(input_tokens=1_000_000), price).total == D("0.01")


def test_user_row_naming_an_unknown_provider_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _with_user(
            tmp_path,
            '[[model]]\nprovider = "OpenAI"\nname = "gpt-4o-mini"\n'
            'batch = { input = "0.05", output = "0.2" }\n',
        )
    assert isinstance(caught.value, PriceTargetError)
    message = str(caught.value)
    assert "my-prices.toml: key 'model[1].provider'" in message
    assert "unknown provider 'OpenAI'" in message and "did you mean 'openai'?" in message


def test_user_row_naming_an_unknown_model_family_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        PriceTargetError, match=r"key 'price\[1\]\.model': unknown model family 'GPT'"
    ):
        _with_user(
            tmp_path,
            '[[price]]\nprovider = "openai"\nmodel = "GPT-4o-mini"\nmode = "batch"\n'
            'input = "0.05"\noutput = "0.2"\n',
        )


def test_user_row_for_a_new_model_of_a_known_family_is_fine(tmp_path: Path) -> None:
    reg = _with_user(
        tmp_path,
        '[[model]]\nprovider = "openai"\nname = "gpt-9-preview"\n'
        'batch = { input = "1", output = "2" }\n',
    )
    assert reg.price("openai", "gpt-9-preview", "batch", TODAY).origin.endswith("my-prices.toml")


def test_config_rows_name_the_config_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "polybatch.toml"
    with pytest.raises(
        PriceTargetError, match=r"polybatch.toml \[prices\]: key 'prices.model\[1\]"
    ):
        PriceRegistry.load(
            files=bundled_price_files(),
            user_prices={
                "model": [
                    {
                        "provider": "Anthropic",
                        "name": "claude-x",
                        "batch": {"input": "1", "output": "2"},
                    }
                ]
            },
            config_file=config,
            known_providers=["anthropic"],
        )


def test_an_explicit_cache_read_lowers_the_low_end_at_any_length(bundled: PriceRegistry) -> None:
    item = BatchItem(
        messages=[Message(role="user", content="Hello world")],
        max_tokens=10,
        extra={"cachedContent": "cachedContents/abc"},
    )
    est = estimate_cost([item], "gemini", "gemini-2.5-flash", bundled, default_max_tokens=1)
    # low: 9 tokens x 0.03 (cache read) = 0.00000027; high: 9 x 0.15 + 10 x 1.25 = 0.00001385
    assert (est.low, est.high) == (D("0.00000027"), D("0.00001385"))


def test_submit_refuses_a_config_that_prices_an_unknown_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polybatch import submit
    from polybatch.pricing import price_registry

    config = tmp_path / "polybatch.toml"
    config.write_text(
        '[[prices.model]]\nprovider = "OpenAI"\nname = "gpt-4o-mini"\n'
        'batch = { input = "0.01", output = "0.02" }\n'
    )
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(ConfigError, match=r"polybatch.toml \[prices\]: key 'prices.model\[1\]"):
            submit(["Hello"], "openai:gpt-4o-mini", start=False, api_key="sk-test")
    finally:
        config.unlink()
        price_registry(reload=True)


# -- figures a person can read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "shown", "dollars"),
    [
        ("0.000047", "0.000047", "$0.000047"),  # not 0.0000
        ("0.0000375", "0.0000375", "$0.0000375"),
        ("0.0307125", "0.03071", "$0.030713"),  # 4 significant digits; $ keeps 6 decimals
        ("1234.5678", "1234.57", "$1234.5678"),  # whole digits are never rounded away
        ("0", "0.00", "$0.000000"),
    ],
)
def test_money_keeps_enough_significant_digits(amount: str, shown: str, dollars: str) -> None:
    from polybatch.pricing import show_money, usd

    assert show_money(D(amount)) == shown
    assert usd(D(amount)) == dollars


def test_usage_tables_show_small_costs_and_name_the_currency(bundled: PriceRegistry) -> None:
    import json

    from polybatch.items import BatchResult
    from polybatch.pricing import render_table, usage_rows

    result = BatchResult(
        custom_id="x",
        status="succeeded",
        provider="openai",
        model="gpt-4o-mini",
        usage=Usage(input_tokens=100, output_tokens=100),
    )
    rows = usage_rows([(result, "job-1", TODAY)], bundled)
    # 100 x 0.075 + 100 x 0.3 = 0.0000375 batch; 100 x 0.15 + 100 x 0.6 = 0.000075 standard
    table = render_table(rows)
    line = next(line for line in table.splitlines() if "gpt-4o-mini" in line)
    assert "0.0000375" in line and "0.000075" in line and "USD" in line
    assert "Currency" in table.splitlines()[1]
    data = json.loads(render_table(rows, "json"))
    assert (data[0]["batch_cost_usd"], data[0]["currency"]) == ("0.0000375", "USD")
    assert data[-1]["saving_usd"] == "0.0000375"  # exact, no rounding unless asked


def test_a_price_row_may_name_its_currency(tmp_path: Path) -> None:
    from polybatch.errors import PricingError
    from polybatch.items import BatchResult
    from polybatch.pricing import describe_estimate, usage_rows

    reg = _with_user(
        tmp_path,
        '[[model]]\nprovider = "mistral"\nname = "mistral-small-latest"\ncurrency = "EUR"\n'
        'batch = { input = "0.04", output = "0.12" }\n',
    )
    price = reg.price("mistral", "mistral-small-latest", "batch", TODAY)
    assert price.currency == "EUR"
    item = BatchItem(messages=[Message(role="user", content="Hello world")], max_tokens=10)
    est = estimate_cost([item], "mistral", "mistral-small-latest", reg, default_max_tokens=1)
    # 9 x 0.04 + 10 x 0.12 = 0.00000156 EUR
    assert (est.high, est.currency) == (D("0.00000156"), "EUR")
    assert "0.00000156 EUR" in describe_estimate(est)
    # one table cannot add euros to dollars
    records = [
        (
            BatchResult(
                custom_id=p, status="succeeded", provider=p, model=m, usage=Usage(input_tokens=10)
            ),
            "job",
            TODAY,
        )
        for p, m in (("mistral", "mistral-small-latest"), ("openai", "gpt-4o-mini"))
    ]
    with pytest.raises(PricingError, match=r"different currencies: EUR .* USD"):
        usage_rows(records, reg)


def test_decoded_openai_cache_writes_cost_the_write_rate(bundled: PriceRegistry) -> None:
    # the issue's case end to end through the OpenAI decoder: a gpt-6-sol reply whose 10,000
    # prompt tokens were all written to the cache (prompt_tokens_details.cache_write_tokens)
    # batch: 10,000 x 1.25 (cache write) / 1M = 0.0125, not 10,000 x 1 (input) / 1M = 0.01
    usage = decode_usage(
        {
            "prompt_tokens": 10_000,
            "completion_tokens": 0,
            "total_tokens": 10_000,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 10_000},
        }
    )
    assert usage == Usage(cache_write_5m_tokens=10_000)
    price = bundled.price("openai", "gpt-6-sol", "batch", TODAY)
    assert cost_of(usage, price).total == D("0.0125")
    # standard: 10,000 x 2.5 / 1M = 0.025
    standard = bundled.price("openai", "gpt-6-sol", "standard", TODAY)
    assert cost_of(usage, standard).total == D("0.025")
