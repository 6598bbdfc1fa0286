"""The two shapes of price data: one ``[[model]]`` entry per model, and the older ``[[price]]`` rows.

Bundled files use the new shape; a user's override file and the ``[prices]`` rows of a config
written in the older shape keep working (``tests/data/prices_old_shape.toml``), and both shapes
give the same rows.
"""

from __future__ import annotations

import json
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from polybatch.errors import PricingError
from polybatch.items import Usage
from polybatch.pricing import PriceRegistry, cost_of, load_price_file, parse_rows
from polybatch.pricing.registry import SCHEMA_FILE, PriceRow

D = Decimal
DAY = date(2026, 11, 24)
OLD_SHAPE = Path(__file__).parent / "data" / "prices_old_shape.toml"

#: tests/data/prices_old_shape.toml written one entry per model
NEW_SHAPE = """\
#:schema ./prices.schema.json
[[model]]
provider = "openai"
name = "gpt-4o-mini"
aliases = ["gpt-4o-mini-2024-07-18"]
effective = 2024-07-18
batch = { input = "0.07", cached_input = "0.07", output = "0.28", source = "my negotiated rate", checked_on = 2026-11-24 }
standard = { input = "0.14", output = "0.56" }

[[model]]
provider = "openai"
name = "my-long-model"
batch = { input = 1, output = 4 }
[[model.tiers]]
above_input_tokens = 200000
batch = { input = "2", output = "6" }
"""

BUNDLED = """\
[[model]]
provider = "openai"
name = "gpt-4o-mini"
aliases = ["gpt-4o-mini-2024-07-18"]
source = "bundled"
checked_on = 2026-11-01
[[model.periods]]
standard = { input = "0.2", output = "0.8" }
batch = { input = "0.1", output = "0.4" }
[[model.periods]]
effective = 2024-07-18
standard = { input = "0.15", cached_input = "0.075", output = "0.6" }
batch = { input = "0.075", cached_input = "0.075", output = "0.3" }
"""


def _comparable(row: PriceRow) -> tuple[Any, ...]:
    """A row without where it came from, and without aliases (they belong to the model)."""
    return (row.key, row.rates, row.tiers, row.source, row.checked_on)


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    path = tmp_path / "bundled.toml"
    path.write_text(BUNDLED, encoding="utf-8")
    return path


def test_both_shapes_give_the_same_rows(tmp_path: Path) -> None:
    new = tmp_path / "new.toml"
    new.write_text(NEW_SHAPE, encoding="utf-8")
    old_rows = sorted(map(_comparable, load_price_file(OLD_SHAPE)))
    assert old_rows == sorted(map(_comparable, load_price_file(new)))
    assert len(old_rows) == 3


def test_an_entry_gives_its_aliases_sources_and_periods_to_every_row(bundled: Path) -> None:
    rows = {(r.mode, r.effective): r for r in load_price_file(bundled)}
    assert len(rows) == 4
    assert {r.aliases for r in rows.values()} == {("gpt-4o-mini-2024-07-18",)}
    assert {(r.source, r.checked_on) for r in rows.values()} == {("bundled", date(2026, 11, 1))}
    registry = PriceRegistry.load(files=[bundled])
    assert registry.price("openai", "gpt-4o-mini", "batch", date(2024, 7, 17)).rates.input == D(
        "0.1"
    )
    assert registry.price("openai", "gpt-4o-mini-2024-07-18", "standard", DAY).rates.output == D(
        "0.6"
    )


def test_an_old_shape_user_file_overrides_a_new_shape_bundled_file(bundled: Path) -> None:
    registry = PriceRegistry.load(files=[bundled], user_file=OLD_SHAPE)
    price = registry.price("openai", "gpt-4o-mini-2024-07-18", "batch", DAY)
    assert price.origin == str(OLD_SHAPE)
    assert cost_of(Usage(input_tokens=1_000_000), price).total == D("0.07")
    # the earlier bundled period and the other models stay
    assert registry.price("openai", "gpt-4o-mini", "batch", date(2024, 1, 1)).rates.input == D(
        "0.1"
    )
    long = registry.price("openai", "my-long-model", "batch", DAY)
    assert long.rates_for(300_000).output == D("6")


def test_config_prices_take_old_rows_new_entries_and_a_file_of_either(
    bundled: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new.toml"
    new.write_text(NEW_SHAPE, encoding="utf-8")
    config_toml = f"""
[prices]
file = "{OLD_SHAPE}"
[[prices.price]]
provider = "openai"
model = "o3"
mode = "batch"
input = "0.9"
output = "3.6"
[[prices.model]]
provider = "openai"
name = "my-finetune"
batch = {{ input = "0.3", output = "1.2" }}
"""
    user_prices = tomllib.loads(config_toml)["prices"]
    registry = PriceRegistry.load(files=[bundled], user_prices=user_prices)
    assert registry.price("openai", "o3", "batch", DAY).rates.input == D("0.9")
    assert registry.price("openai", "my-finetune", "batch", DAY).rates.output == D("1.2")
    assert registry.price("openai", "gpt-4o-mini", "batch", DAY).rates.input == D("0.07")
    relative = PriceRegistry.load(
        files=[bundled], user_prices={"file": new.name}, base_dir=tmp_path
    )
    assert relative.price("openai", "gpt-4o-mini", "standard", DAY).rates.input == D("0.14")


def test_a_schema_key_is_ignored_and_both_shapes_mix_in_one_document() -> None:
    rows = parse_rows(
        {
            "$schema": "./prices.schema.json",
            "price": [{"provider": "p", "model": "a", "mode": "batch", "input": 1, "output": 2}],
            "model": [{"provider": "p", "name": "b", "standard": {"input": 1, "output": 2}}],
        },
        "doc",
    )
    assert sorted((r.model, r.mode) for r in rows) == [("a", "batch"), ("b", "standard")]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"name": "m", "batch": {"input": "1", "output": "2"}}, r": missing field 'provider'"),
        ({"provider": "p", "name": "m"}, r": gives neither 'standard' nor 'batch'"),
        ({"provider": "p", "name": "m", "mode": "batch"}, r": unknown field\(s\) 'mode'"),
        ({"provider": "p", "name": "m", "batch": {"input": "1"}}, r", batch: missing field 'output'"),
        ({"provider": "p", "name": "m", "batch": {"input": 0.5, "output": "1"}}, r", batch: field 'input' .*floats"),
        ({"provider": "p", "name": "m", "batch": {"input": "1", "output": "2", "rate": "3"}}, r", batch: unknown field\(s\) 'rate'"),
        ({"provider": "p", "name": "m", "batch": "1"}, r", batch: must be a table of rates"),
        ({"provider": "p", "name": "m", "periods": [], }, r": field 'periods' must be a non-empty list"),
        ({"provider": "p", "name": "m", "batch": {"input": "1", "output": "2"}, "periods": [{"batch": {"input": "1", "output": "2"}}]}, r": field\(s\) 'batch' belong in its periods"),
        ({"provider": "p", "name": "m", "periods": [{"effective": "2025-01-01"}]}, r", period 1: gives neither"),
        ({"provider": "p", "name": "m", "batch": {"input": "1", "output": "2"}, "tiers": [{"above_input_tokens": 10, "batch": {"input": "1"}}]}, r", batch, tier 1: missing field 'output'"),
        ({"provider": "p", "name": "m", "batch": {"input": "1", "output": "2"}, "tiers": [{"above": 10}]}, r", tier 1: unknown field\(s\) 'above'"),
    ],
)  # fmt: skip
def test_malformed_entries_name_the_origin_the_model_and_the_field(
    entry: dict[str, Any], match: str
) -> None:
    with pytest.raises(PricingError, match=r"^doc: model 1 \(m\)" + match):
        parse_rows({"model": [entry]}, "doc")


@pytest.mark.parametrize(
    "entry",
    [
        {"provider": "p", "name": "m", "batch": {"input": 0.5, "output": "1"}},
        {"provider": "p", "name": "m"},
        {"provider": "p", "name": "m", "mode": "batch", "batch": {"input": "1", "output": "2"}},
        {"provider": "p", "name": "m", "batch": {"input": "1"}},
        {
            "provider": "p",
            "name": "m",
            "batch": {"input": "1", "output": "2"},
            "periods": [{"batch": {"input": "1", "output": "2"}}],
        },
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(entry: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"model": [entry]}, schema)


def test_an_entry_pricing_a_period_twice_is_an_error() -> None:
    twice = {"input": "1", "output": "2"}
    entry = {"provider": "p", "name": "m", "periods": [{"batch": twice}, {"batch": twice}]}
    with pytest.raises(
        PricingError, match=r"^doc: model 1 prices p:m \(batch\) from the start twice"
    ):
        parse_rows({"model": [entry]}, "doc")
