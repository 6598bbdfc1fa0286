"""Costs against hand-computed amounts, the registry's lookups and overrides, malformed files.

Every expected amount below was worked out by hand from the fixture rates (USD per million
tokens): tokens x rate / 1,000,000, per bucket, per request.
"""

from __future__ import annotations

import warnings
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from polybatch.errors import PriceNotFoundError, PricingError
from polybatch.items import Usage
from polybatch.pricing import (
    Cost,
    PriceRegistry,
    PriceRow,
    cost_of,
    load_price_file,
    strip_date_suffix,
    total_cost,
)

D = Decimal

FIXTURE = """
[[price]]
provider = "openai"
model = "gpt-4o-mini"
aliases = ["gpt-4o-mini-2024-07-18"]
mode = "standard"
effective = 2024-07-18
input = "0.15"
cached_input = "0.075"
output = "0.60"
source = "test"
checked_on = 2026-11-24

[[price]]
provider = "openai"
model = "gpt-4o-mini"
mode = "batch"
effective = 2024-07-18
input = "0.075"
cached_input = "0.0375"
output = "0.30"

# a dated price change: o3 cut on 2025-06-10
[[price]]
provider = "openai"
model = "o3"
mode = "standard"
effective = 2025-04-16
input = "10"
cached_input = "2.5"
output = "40"

[[price]]
provider = "openai"
model = "o3"
mode = "standard"
effective = 2025-06-10
input = "2"
cached_input = "0.5"
output = "8"

[[price]]
provider = "openai"
model = "o3"
mode = "batch"
effective = 2025-04-16
input = "5"
cached_input = "2.5"
output = "20"

[[price]]
provider = "openai"
model = "o3"
mode = "batch"
effective = 2025-06-10
input = "1"
cached_input = "0.5"
output = "4"

# no cached rate: cache reads fall back to the input rate
[[price]]
provider = "openai"
model = "text-embedding-3-small"
mode = "batch"
input = "0.01"
output = 0

[[price]]
provider = "anthropic"
model = "claude-sonnet-4-5"
aliases = ["claude-sonnet-4-5-20250929"]
mode = "standard"
effective = 2025-09-29
input = "3"
cached_input = "0.3"
cache_write_5m = "3.75"
cache_write_1h = "6"
output = "15"
[[price.tiers]]
above_input_tokens = 200000
input = "6"
cached_input = "0.6"
cache_write_5m = "7.5"
cache_write_1h = "12"
output = "22.5"

[[price]]
provider = "anthropic"
model = "claude-sonnet-4-5"
mode = "batch"
effective = 2025-09-29
input = "1.5"
cached_input = "0.15"
cache_write_5m = "1.875"
cache_write_1h = "3"
output = "7.5"
[[price.tiers]]
above_input_tokens = 200000
input = "3"
cached_input = "0.3"
cache_write_5m = "3.75"
cache_write_1h = "6"
output = "11.25"

[[price]]
provider = "anthropic"
model = "claude-haiku-4-5"
mode = "standard"
input = "1"
cached_input = "0.1"
cache_write_5m = "1.25"
cache_write_1h = "2"
output = "5"

[[price]]
provider = "anthropic"
model = "claude-haiku-4-5"
mode = "batch"
input = "0.5"
cached_input = "0.05"
cache_write_5m = "0.625"
cache_write_1h = "1"
output = "2.5"
"""


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(FIXTURE, encoding="utf-8")
    return path


@pytest.fixture
def registry(price_file: Path) -> PriceRegistry:
    return PriceRegistry.load(files=[price_file])


DAY = date(2026, 1, 15)

# (id, provider, model, mode, date, usage, expected total, expected buckets or None)
CASES: list[tuple[str, str, str, str, date, Usage, Decimal, tuple[str, str, str, str] | None]] = [
    ("oa-batch-1M-in-1M-out", "openai", "gpt-4o-mini", "batch", DAY,
     Usage(input_tokens=1_000_000, output_tokens=1_000_000), D("0.375"), None),
    ("oa-standard-1M-in-1M-out", "openai", "gpt-4o-mini", "standard", DAY,
     Usage(input_tokens=1_000_000, output_tokens=1_000_000), D("0.75"), None),
    # 1000*0.075 + 3000*0.0375 + 500*0.30, per million
    ("oa-batch-cached", "openai", "gpt-4o-mini", "batch", DAY,
     Usage(input_tokens=1000, cached_input_tokens=3000, output_tokens=500), D("0.0003375"),
     ("0.000075", "0.0001125", "0", "0.00015")),
    ("oa-standard-cached", "openai", "gpt-4o-mini", "standard", DAY,
     Usage(input_tokens=1000, cached_input_tokens=3000, output_tokens=500), D("0.000675"),
     ("0.00015", "0.000225", "0", "0.0003")),
    ("oa-alias", "openai", "gpt-4o-mini-2024-07-18", "batch", DAY,
     Usage(input_tokens=2_000_000), D("0.15"), None),
    ("oa-unlisted-date-suffix", "openai", "gpt-4o-mini-2099-01-01", "batch", DAY,
     Usage(input_tokens=1_000_000), D("0.075"), None),
    ("oa-reasoning-not-priced-twice", "openai", "gpt-4o-mini", "batch", DAY,
     Usage(output_tokens=1000, reasoning_tokens=800), D("0.0003"), None),
    # o3 before / after the 2025-06-10 cut: 100k in, 10k out
    ("o3-standard-day-before-cut", "openai", "o3", "standard", date(2025, 6, 9),
     Usage(input_tokens=100_000, output_tokens=10_000), D("1.4"), None),
    ("o3-standard-on-cut-day", "openai", "o3", "standard", date(2025, 6, 10),
     Usage(input_tokens=100_000, output_tokens=10_000), D("0.28"), None),
    ("o3-batch-before-cut", "openai", "o3", "batch", date(2025, 5, 1),
     Usage(input_tokens=100_000, output_tokens=10_000), D("0.7"), None),
    ("o3-batch-after-cut", "openai", "o3", "batch", DAY,
     Usage(input_tokens=100_000, output_tokens=10_000), D("0.14"), None),
    ("o3-batch-cached-only", "openai", "o3", "batch", DAY,
     Usage(cached_input_tokens=1_000_000), D("0.5"), ("0", "0.5", "0", "0")),
    ("no-cached-rate-falls-back-to-input", "openai", "text-embedding-3-small", "batch", DAY,
     Usage(cached_input_tokens=1_000_000), D("0.01"), None),
    # Anthropic: 10k in, 50k cache read, 20k 5m write, 2k out
    ("an-standard-cache-read-write", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=10_000, cached_input_tokens=50_000, cache_write_tokens=20_000,
           output_tokens=2_000), D("0.15"), ("0.03", "0.015", "0.075", "0.03")),
    ("an-batch-cache-read-write", "anthropic", "claude-sonnet-4-5", "batch", DAY,
     Usage(input_tokens=10_000, cached_input_tokens=50_000, cache_write_tokens=20_000,
           output_tokens=2_000), D("0.075"), ("0.015", "0.0075", "0.0375", "0.015")),
    ("an-standard-1h-write", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=1000, cache_write_1h_tokens=100_000, output_tokens=1000), D("0.618"),
     ("0.003", "0", "0.6", "0.015")),
    ("an-batch-1h-write", "anthropic", "claude-sonnet-4-5", "batch", DAY,
     Usage(input_tokens=1000, cache_write_1h_tokens=100_000, output_tokens=1000), D("0.309"),
     ("0.0015", "0", "0.3", "0.0075")),
    # 40k 5m writes at 0.625 + 40k 1h writes at 1 -> 0.025 + 0.04 in one cache_write bucket
    ("an-batch-5m-and-1h-writes", "anthropic", "claude-haiku-4-5", "batch", DAY,
     Usage(cache_write_tokens=40_000, cache_write_1h_tokens=40_000), D("0.065"),
     ("0", "0", "0.065", "0")),
    ("an-standard-cache-read-only", "anthropic", "claude-haiku-4-5", "standard", DAY,
     Usage(cached_input_tokens=1_000_000), D("0.1"), None),
    ("an-dated-id", "anthropic", "claude-sonnet-4-5-20250929", "standard", DAY,
     Usage(input_tokens=100_000), D("0.3"), None),
    # long-context tier: above 200k total input, every token at the tier rates
    ("tier-above", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=250_000, output_tokens=1000), D("1.5225"), ("1.5", "0", "0", "0.0225")),
    ("tier-below", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=150_000, output_tokens=1000), D("0.465"), ("0.45", "0", "0", "0.015")),
    ("tier-exactly-at-threshold-is-base", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=200_000), D("0.6"), None),
    ("tier-reached-through-cache-reads", "anthropic", "claude-sonnet-4-5", "standard", DAY,
     Usage(input_tokens=100_000, cached_input_tokens=150_000), D("0.69"),
     ("0.6", "0.09", "0", "0")),
    ("tier-above-batch", "anthropic", "claude-sonnet-4-5", "batch", DAY,
     Usage(input_tokens=300_000, output_tokens=10_000), D("1.0125"), ("0.9", "0", "0", "0.1125")),
    ("zero-usage", "anthropic", "claude-sonnet-4-5", "batch", DAY, Usage(), D("0"),
     ("0", "0", "0", "0")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "model", "mode", "on", "usage", "expected", "buckets"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hand_computed_costs(
    registry: PriceRegistry,
    provider: str,
    model: str,
    mode: str,
    on: date,
    usage: Usage,
    expected: Decimal,
    buckets: tuple[str, str, str, str] | None,
) -> None:
    price = registry.price(provider, model, mode, on)  # type: ignore[arg-type]
    cost = cost_of(usage, price)
    assert cost.total == expected
    assert isinstance(cost.total, Decimal)
    if buckets is not None:
        assert (cost.input, cost.cached_input, cost.cache_write, cost.output) == tuple(
            D(b) for b in buckets
        )


def test_there_are_at_least_twenty_hand_computed_cases() -> None:
    assert len(CASES) >= 20


def test_tiers_apply_per_request_not_to_the_sum(registry: PriceRegistry) -> None:
    price = registry.price("anthropic", "claude-sonnet-4-5", "standard", DAY)
    above = Usage(input_tokens=250_000, output_tokens=1000)  # 1.5 + 0.0225
    below = Usage(input_tokens=150_000, output_tokens=1000)  # 0.45 + 0.015
    assert total_cost([above, below], price).total == D("1.9875")
    # pooled, the 400k input would all be at the tier rate: the wrong answer
    assert cost_of(above + below, price).total == D("2.445")


def test_cost_adds_and_sums() -> None:
    a = Cost(D("1"), D("2"), D("3"), D("4"))
    assert (a + a).total == D("20")
    assert sum([a, a, a]) == Cost(D("3"), D("6"), D("9"), D("12"))
    assert total_cost([], _flat_row()) == Cost()


# -- the registry ----------------------------------------------------------------------------


def _flat_row() -> PriceRow:
    from polybatch.pricing import Rates

    return PriceRow(provider="openai", model="m", mode="batch", rates=Rates(D("1"), D("2")))


def test_strip_date_suffix() -> None:
    assert strip_date_suffix("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert strip_date_suffix("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert strip_date_suffix("gpt-4.1") == "gpt-4.1"
    assert strip_date_suffix("o3-mini") == "o3-mini"
    assert strip_date_suffix("claude-opus-4-1") == "claude-opus-4-1"


def test_exact_name_wins_over_stripping(tmp_path: Path) -> None:
    # a model whose own name ends in a date is priced as itself, not as its stem
    path = tmp_path / "p.toml"
    path.write_text(
        FIXTURE
        + """
[[price]]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
mode = "batch"
input = "9"
output = "9"
""",
        encoding="utf-8",
    )
    with pytest.raises(PricingError, match="already an alias of openai:gpt-4o-mini"):
        PriceRegistry.load(files=[path])
    path.write_text(
        FIXTURE.replace('aliases = ["gpt-4o-mini-2024-07-18"]\n', "")
        + """
[[price]]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
mode = "batch"
input = "9"
output = "9"
""",
        encoding="utf-8",
    )
    registry = PriceRegistry.load(files=[path])
    assert registry.price("openai", "gpt-4o-mini-2024-07-18", "batch", DAY).rates.input == D("9")
    assert registry.price("openai", "gpt-4o-mini-2030-01-01", "batch", DAY).rates.input == D(
        "0.075"
    )


def test_strict_lookup_names_provider_model_mode_and_date(registry: PriceRegistry) -> None:
    with pytest.raises(PriceNotFoundError) as info:
        registry.price("openai", "gpt-9000", "batch", date(2026, 2, 3))
    message = str(info.value)
    for part in ("openai", "gpt-9000", "batch", "2026-02-03"):
        assert part in message
    assert registry.find("openai", "gpt-9000", "batch", date(2026, 2, 3)) is None


def test_lookup_before_the_first_period_is_not_found(registry: PriceRegistry) -> None:
    with pytest.raises(PriceNotFoundError, match=r"o3.*2025-01-01.*start on 2025-04-16"):
        registry.price("openai", "o3", "standard", date(2025, 1, 1))
    assert registry.find("openai", "o3", "standard", date(2025, 4, 15)) is None
    assert registry.find("openai", "o3", "standard", date(2025, 4, 16)) is not None


def test_unknown_provider_is_not_found(registry: PriceRegistry) -> None:
    with pytest.raises(PriceNotFoundError, match="nosuch"):
        registry.price("nosuch", "gpt-4o-mini", "batch", DAY)


def test_a_mode_without_rows_is_not_found(registry: PriceRegistry) -> None:
    with pytest.raises(PriceNotFoundError, match="no standard price"):
        registry.price("openai", "text-embedding-3-small", "standard", DAY)


def test_user_file_overrides_bundled_row(price_file: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text(
        """
[[price]]
provider = "openai"
model = "gpt-4o-mini"
mode = "batch"
effective = 2024-07-18
input = "0.07"
output = "0.28"
""",
        encoding="utf-8",
    )
    registry = PriceRegistry.load(files=[price_file], user_file=user)
    price = registry.price("openai", "gpt-4o-mini-2024-07-18", "batch", DAY)
    # 1M in at the user's 0.07 (bundled says 0.075); no cached rate -> input rate
    assert cost_of(Usage(input_tokens=1_000_000), price).total == D("0.07")
    assert cost_of(Usage(cached_input_tokens=1_000_000), price).total == D("0.07")
    assert price.origin == str(user)
    # other rows untouched
    assert registry.price("openai", "gpt-4o-mini", "standard", DAY).rates.input == D("0.15")


def test_config_prices_override_file_and_bundled(price_file: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text(
        '[[price]]\nprovider = "openai"\nmodel = "o3"\nmode = "batch"\n'
        'effective = 2025-06-10\ninput = "0.9"\noutput = "3.9"\n',
        encoding="utf-8",
    )
    config = {
        "file": str(user),
        "price": [
            {"provider": "openai", "model": "o3", "mode": "batch", "effective": "2025-06-10",
             "input": "0.8", "output": "3.2"},
            # a brand-new model the bundled data lacks
            {"provider": "openai", "model": "my-finetune", "mode": "batch",
             "input": "0.3", "output": "1.2"},
        ],
    }  # fmt: skip
    registry = PriceRegistry.load(files=[price_file], user_prices=config)
    relative = PriceRegistry.load(
        files=[price_file], user_prices={"file": user.name}, base_dir=tmp_path
    )
    assert relative.price("openai", "o3", "batch", DAY).rates.input == D("0.9")
    assert registry.price("openai", "o3", "batch", DAY).rates.input == D("0.8")
    # the earlier bundled period is still there
    assert registry.price("openai", "o3", "batch", date(2025, 5, 1)).rates.input == D("5")
    price = registry.price("openai", "my-finetune", "batch", date(2000, 1, 1))
    assert cost_of(Usage(input_tokens=1_000_000, output_tokens=1_000_000), price).total == D("1.5")


def test_config_prices_as_a_list_and_errors() -> None:
    rows = [{"provider": "p", "model": "m", "mode": "batch", "input": "1", "output": "2"}]
    registry = PriceRegistry.load(files=[], user_prices=rows)
    assert len(registry) == 1
    with pytest.raises(PricingError, match=r"config \[prices\]: unknown key"):
        PriceRegistry.load(files=[], user_prices={"rows": []})
    with pytest.raises(PricingError, match=r"config \[prices\]: price row 1.*'input'"):
        PriceRegistry.load(files=[], user_prices={"price": [{**rows[0], "input": 1.5}]})


def test_two_bundled_files_pricing_the_same_key_keep_the_first(
    price_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text(
        '[[price]]\nprovider = "openai"\nmodel = "o3"\nmode = "batch"\n'
        'effective = 2025-06-10\ninput = "99"\noutput = "99"\n',
        encoding="utf-8",
    )
    with pytest.warns(RuntimeWarning, match="both price openai:o3"):
        registry = PriceRegistry.load(files=[price_file, other])
    assert registry.price("openai", "o3", "batch", DAY).rates.input == D("1")


def test_datetime_lookup_uses_its_date(registry: PriceRegistry) -> None:
    from datetime import datetime

    row = registry.find("openai", "o3", "standard", datetime(2025, 6, 10, 0, 1))
    assert row is not None and row.rates.input == D("2")


# -- malformed price files -------------------------------------------------------------------

GOOD_ROW = 'provider = "openai"\nmodel = "m"\nmode = "batch"\ninput = "1"\noutput = "2"\n'


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("[[price]]\n" + GOOD_ROW.replace('input = "1"', "input = 0.1"), r"row 1 \(m\).*'input'.*float"),
        ("[[price]]\n" + GOOD_ROW.replace('output = "2"\n', ""), r"row 1 \(m\).*missing field 'output'"),
        ("[[price]]\n" + GOOD_ROW.replace('"batch"', '"cheap"'), r"row 1 \(m\).*'mode'"),
        ("[[price]]\n" + GOOD_ROW + "colour = 1\n", r"row 1 \(m\).*unknown field.*'colour'"),
        ("[[price]]\n" + GOOD_ROW + 'effective = "yesterday"\n', r"row 1 \(m\).*'effective'"),
        ("[[price]]\n" + GOOD_ROW + "effective = 2024-01-01T10:00:00\n", r"'effective'.*date-time"),
        ("[[price]]\n" + GOOD_ROW.replace('"1"', '"-1"'), r"row 1 \(m\).*'input'.*non-negative"),
        ("[[price]]\n" + GOOD_ROW.replace('"1"', '"one"'), r"row 1 \(m\).*'input'.*not a number"),
        ("[[price]]\n" + GOOD_ROW.replace('"1"', "true"), r"'input'.*bool"),
        ("[[price]]\n" + GOOD_ROW.replace('provider = "openai"\n', ""), r"missing field 'provider'"),
        ("[[price]]\n" + GOOD_ROW + "aliases = \"m2\"\n", r"'aliases' must be a list"),
        ("[[price]]\n" + GOOD_ROW + "\n[[price]]\n" + GOOD_ROW, r"rows 1 and 2 both price openai:m"),
        ("[[price]]\n" + GOOD_ROW + "[[price.tiers]]\ninput = \"2\"\noutput = \"4\"\n",
         r"row 1 \(m\), tier 1: field 'above_input_tokens'"),
        ("[[price]]\n" + GOOD_ROW + "[[price.tiers]]\nabove_input_tokens = 10\ninput = \"2\"\n",
         r"row 1 \(m\), tier 1: missing field 'output'"),
        ("[[prices]]\n" + GOOD_ROW, r"unknown top-level key.*'prices'"),
        ("[[price]\n" + GOOD_ROW, r"not valid TOML"),
        ("[[price]]\n" + GOOD_ROW + "\n[[price]]\n" + GOOD_ROW.replace('"m"', '"m2"')
         + "\n[[price]]\n" + GOOD_ROW.replace('"1"', "1.0"), r"price row 3 \(m\)"),
    ],
)  # fmt: skip
def test_malformed_files_name_the_file_row_and_field(tmp_path: Path, body: str, match: str) -> None:
    path = tmp_path / "bad-prices.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(PricingError, match=match) as info:
        load_price_file(path)
    assert "bad-prices.toml" in str(info.value)


def test_missing_file_is_a_pricing_error(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="cannot read price file"):
        load_price_file(tmp_path / "nope.toml")


def test_integer_rates_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[[price]]\n" + GOOD_ROW.replace('"1"', "1"), encoding="utf-8")
    (row,) = load_price_file(path)
    assert row.rates.input == D(1) and isinstance(row.rates.input, Decimal)


def test_no_warning_when_everything_is_priced(registry: PriceRegistry) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.price("openai", "gpt-4o-mini", "batch", DAY)
