"""The bundled price files: one entry per model, valid against the shipped JSON Schema.

``tests/data/prices_answers_before_conversion.json`` holds what the registry answered from the
four plugins' price files when they still wrote every model twice (one ``[[price]]`` row per mode):
every row, every alias and a lookup per name, mode and date. The files in the new shape must answer
exactly the same. The files are found without importing the plugins (core tests never import a
provider SDK). Regenerated once, for issue 17's data changes (the Sonnet 4 long-context tier, Azure
o3's pre-cut period, the mistral-medium-3 alias, and the models added then), and again when the
together preset's three models were added (lines naming ``together`` only); every other line is
as converted.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from datetime import date, datetime, timedelta
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from polybatch.pricing import PriceRegistry
from polybatch.pricing.registry import ALWAYS, MODES, SCHEMA_FILE, Rates

DATA = Path(__file__).parent / "data"
ANSWERS = DATA / "prices_answers_before_conversion.json"
PLUGIN_PACKAGES = (
    "polybatch_openai",
    "polybatch_anthropic",
    "polybatch_gemini",
    "polybatch_mistral",
)
#: lookup dates besides each model's own period starts
PROBE_DAYS = (date(2000, 1, 1), date(2099, 12, 31))


def bundled_price_files() -> list[Path]:
    """The four plugins' price files, found without importing the plugins."""
    found = []
    for package in PLUGIN_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{package} is not installed")
        found.append(Path(next(iter(spec.submodule_search_locations))) / "prices.toml")
    return found


def _rates(rates: Rates) -> dict[str, str]:
    return {k: str(v) for k, v in vars(rates).items() if v is not None}


def _day(day: date) -> str | None:
    return None if day == ALWAYS else day.isoformat()


def registry_answers(registry: PriceRegistry) -> dict[str, list[str]]:
    """What ``registry`` answers, as sorted JSON lines: its rows, its aliases and lookups.

    Lookups ask :meth:`PriceRegistry.find` for every model name, alias and date-suffixed name, in
    both modes, on a far past and a far future day and on the first day of each of its periods
    (and the day before).
    """
    rows = []
    names: dict[str, set[str]] = {}
    days: dict[tuple[str, str], set[date]] = {}
    for row in registry.rows():
        rows.append(
            json.dumps(
                [
                    row.provider,
                    row.model,
                    row.mode,
                    _day(row.effective),
                    row.source,
                    row.checked_on.isoformat() if row.checked_on else None,
                    _rates(row.rates),
                    [[t.above_input_tokens, _rates(t.rates)] for t in row.tiers],
                ]
            )
        )
        names.setdefault(row.provider, set()).update(
            {row.model, *row.aliases, f"{row.model}-2099-01-01"}
        )
        if row.effective != ALWAYS:
            own = days.setdefault((row.provider, row.model), set())
            own.update({row.effective, row.effective - timedelta(days=1)})
    aliases = sorted(
        json.dumps([provider, alias, model])
        for (provider, alias), model in registry._aliases.items()
    )
    lookups = []
    for provider, provider_names in sorted(names.items()):
        for name in sorted(provider_names):
            model = registry.resolve_model(provider, name)
            probe = sorted({*PROBE_DAYS, *days.get((provider, model or ""), ())})
            for mode in MODES:
                for day in probe:
                    found = registry.find(provider, name, mode, day)
                    answer = None if found is None else [found.model, _day(found.effective)]
                    lookups.append(json.dumps([provider, name, mode, day.isoformat(), answer]))
    return {"rows": rows, "aliases": aliases, "lookups": lookups}


def write_answers(answers: dict[str, list[str]], path: Path) -> None:
    """The answers as a JSON object with one line per row, alias and lookup (readable diffs)."""
    parts = []
    for key, lines in answers.items():
        parts.append(f'"{key}": [\n' + ",\n".join(lines) + "\n]")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n", encoding="utf-8")


def _as_json(value: Any) -> Any:
    """A parsed TOML document as the JSON an editor validates (dates become ISO strings)."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


# -- tests -------------------------------------------------------------------------------------


def test_the_new_files_answer_exactly_what_the_old_ones_did() -> None:
    expected = json.loads(ANSWERS.read_text(encoding="utf-8"))
    got = registry_answers(PriceRegistry.load(files=bundled_price_files()))
    for key in ("rows", "aliases", "lookups"):
        assert [json.loads(line) for line in got[key]] == expected[key], key


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_a_bundled_file_writes_each_model_once(package: str) -> None:
    path = next(p for p in bundled_price_files() if p.parent.name == package)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert "price" not in data, "bundled files use the one-entry-per-model shape"
    keys = [(entry["provider"], entry["name"]) for entry in data["model"]]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_a_bundled_file_is_valid_against_the_schema(package: str) -> None:
    path = next(p for p in bundled_price_files() if p.parent.name == package)
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(_as_json(data), schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_line_one_points_editors_at_the_core_schema(package: str) -> None:
    """The Taplo / Even Better TOML ``#:schema`` directive, relative to the file, finds the schema.

    The path is relative to the source checkout (where bundled price files are edited), so each
    plugin points at the one schema in the core instead of keeping a copy.
    """
    path = next(p for p in bundled_price_files() if p.parent.name == package)
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#:schema ")
    target = (path.parent / first.removeprefix("#:schema ").strip()).resolve()
    assert target == SCHEMA_FILE.resolve()


def test_the_schema_ships_in_the_core_package() -> None:
    shipped = package_files("polybatch.pricing").joinpath("prices.schema.json")
    schema = json.loads(shipped.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    assert Path(str(shipped)).resolve() == SCHEMA_FILE.resolve()


def test_the_schema_accepts_the_old_shape_too() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = tomllib.loads((DATA / "prices_old_shape.toml").read_text(encoding="utf-8"))
    jsonschema.validate(_as_json(data), schema, format_checker=jsonschema.FormatChecker())
