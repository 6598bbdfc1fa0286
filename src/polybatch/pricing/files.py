"""Price files and the rows they give: the file format, its JSON Schema and the loader.

A price file is TOML with one ``[[model]]`` entry per model, its standard and batch rates side by
side::

    #:schema ./prices.schema.json           # editors (Taplo / Even Better TOML) validate with it
    [[model]]
    provider = "openai"
    name = "gpt-4o-mini"
    aliases = ["gpt-4o-mini-2024-07-18"]   # optional: other names of the same model
    effective = 2024-07-18                 # optional: first day these prices apply (default: always)
    source = "https://..."                 # optional but expected in bundled files
    checked_on = 2026-11-24                # optional
    # USD per million tokens, decimal strings (or integers); input and output are required, the
    # cache buckets (cached_input, cache_write_5m, cache_write_1h) optional; either mode may be
    # left out, and a mode table may carry its own source / checked_on
    standard = { input = "0.15", cached_input = "0.075", output = "0.6" }
    batch = { input = "0.075", cached_input = "0.075", output = "0.3" }

    [[model.tiers]]                        # optional long-context tiers, applied per request:
    above_input_tokens = 200000            # when total input > this, all tokens use these rates
    standard = { input = "6", output = "22.5" }
    batch = { input = "3", output = "11.25" }

Optional facts, on the entry (model facts) or on an entry, a period or a mode table (labels; the
nearest wins)::

    derived = true                         # label: rates computed by the 50% batch rule, not
                                           # read from a published batch table
    currency = "USD"                       # label: ISO 4217 code of the rates (default USD)
    max_output_tokens = 16384              # model: its output limit (the estimate's bound for
                                           # items without max_tokens on providers sending none)
    reasoning = true                       # model: a reasoning model (reasoning billed as output)
    caching = "automatic"                  # model: the provider caches long prompts by itself;
                                           # "marked" (default): only where cache_control is set

A model whose price changed lists its periods instead of one set of rates: each
``[[model.periods]]`` holds ``effective`` (optional on the first), ``standard``, ``batch``,
``tiers`` and optionally ``source`` / ``checked_on``, in place of those keys on the entry.

Each entry becomes one :class:`PriceRow` per (mode, period);
:class:`polybatch.pricing.registry.PriceRegistry` looks rows up. The older shape, one ``[[price]]``
row per (provider, model, mode, effective) with ``model``, ``mode``, the rates and
``[[price.tiers]]`` at the row's top level, is still read (users' override files and the config's
``[prices]`` rows), and both shapes may appear in one document.

The JSON Schema of both shapes ships as ``polybatch/pricing/prices.schema.json``
(:data:`SCHEMA_FILE`). A file names it on line 1 with Taplo's ``#:schema <path or URL>`` directive
(a relative path is resolved against the TOML file) or with a top-level ``"$schema"`` key, which
the loader ignores. The bundled files point at the core's copy by a path relative to the source
checkout, where they are edited.

Floats are refused: ``0.1`` in TOML is a binary float, and money must stay exact.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

from ..errors import PricingError
from ..providers import strip_date_suffix as strip_date_suffix
from .rows import (
    ALWAYS,
    MODES,
    RATE_KEYS,
    Mode,
    PriceRow,
    Rates,
    Tier,
)

_REQUIRED_RATES = ("input", "output")
#: facts about a set of rates, given on an entry, a period or a mode table (the nearest wins)
_LABEL_KEYS = ("derived", "currency")
#: facts about the model itself, given once per entry
_MODEL_FACT_KEYS = ("max_output_tokens", "reasoning", "caching")
_ROW_KEYS = frozenset(
    {
        "provider",
        "model",
        "aliases",
        "mode",
        "effective",
        "source",
        "checked_on",
        "tiers",
        *_LABEL_KEYS,
        *_MODEL_FACT_KEYS,
        *RATE_KEYS,
    }
)
_TIER_KEYS = frozenset({"above_input_tokens", *RATE_KEYS})
#: the keys of a one-entry-per-model ``[[model]]`` entry, of its periods, mode tables and tiers
_PERIOD_ONLY_KEYS = frozenset({"effective", "tiers", *MODES})
_PERIOD_KEYS = frozenset({"source", "checked_on", *_LABEL_KEYS, *_PERIOD_ONLY_KEYS})
_ENTRY_KEYS = frozenset(
    {"provider", "name", "aliases", "periods", *_MODEL_FACT_KEYS, *_PERIOD_KEYS}
)
_MODE_KEYS = frozenset({"source", "checked_on", *_LABEL_KEYS, *RATE_KEYS})
_MODEL_TIER_KEYS = frozenset({"above_input_tokens", *MODES})
#: a date suffix a provider appends to a model name: -2024-07-18 or -20240718
#: the JSON Schema of price files, shipped in the package (editors: see the module docstring)
SCHEMA_FILE = Path(__file__).with_name("prices.schema.json")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


# -- parsing ---------------------------------------------------------------------------------


def _money(value: Any, where: str, key: str) -> Decimal:
    # bool is an int subclass; float is inexact; both are refused
    if isinstance(value, bool | float):
        raise PricingError(
            f"{where}: field '{key}' must be a decimal string such as \"0.15\", "
            f"not {type(value).__name__} {value!r} (floats are inexact)"
        )
    if isinstance(value, int | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise PricingError(f"{where}: field '{key}' is not a number: {value!r}") from None
        if not amount.is_finite() or amount < 0:
            raise PricingError(f"{where}: field '{key}' must be a finite, non-negative amount")
        return amount
    raise PricingError(
        f"{where}: field '{key}' must be a decimal string, not {type(value).__name__}"
    )


def _date(value: Any, where: str, key: str) -> date:
    if isinstance(value, datetime):
        raise PricingError(f"{where}: field '{key}' must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PricingError(f"{where}: field '{key}' must be a date (YYYY-MM-DD), got {value!r}")


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PricingError(f"{where}: field '{key}' must be a non-empty string")
    return value.strip()


def _rates(data: Mapping[str, Any], where: str) -> Rates:
    for key in _REQUIRED_RATES:
        if key not in data:
            raise PricingError(f"{where}: missing field '{key}'")
    found = {k: _money(data[k], where, k) for k in RATE_KEYS if k in data}
    return Rates(**found)


def parse_row(data: Any, origin: str, index: int, *, key: str = "price") -> PriceRow:
    """One ``[[price]]`` table (the older shape) as a PriceRow; errors name origin, row and field."""
    where = f"{origin}: price row {index + 1}"
    if isinstance(data, Mapping) and "model" in data and isinstance(data["model"], str):
        where += f" ({data['model']})"
    return _row(data, where, origin, entry=f"{key}[{index + 1}]")


def _flag(value: Any, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise PricingError(f"{where}: field '{key}' must be true or false")
    return value


def _facts(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The optional labels and model facts of a row, checked."""
    out: dict[str, Any] = {}
    if "derived" in data:
        out["derived"] = _flag(data["derived"], where, "derived")
    if "reasoning" in data:
        out["reasoning"] = _flag(data["reasoning"], where, "reasoning")
    if "currency" in data:
        currency = data["currency"]
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            raise PricingError(
                f"{where}: field 'currency' must be a 3-letter ISO 4217 code such as \"USD\""
            )
        out["currency"] = currency
    if "max_output_tokens" in data:
        limit = data["max_output_tokens"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise PricingError(f"{where}: field 'max_output_tokens' must be an integer >= 1")
        out["max_output_tokens"] = limit
    if "caching" in data:
        if data["caching"] not in ("marked", "automatic"):
            raise PricingError(f"{where}: field 'caching' must be 'marked' or 'automatic'")
        out["caching"] = data["caching"]
    return out


def _row(data: Any, where: str, origin: str, *, entry: str = "") -> PriceRow:
    if not isinstance(data, Mapping):
        raise PricingError(f"{where}: must be a table, not {type(data).__name__}")
    unknown = sorted(set(data) - _ROW_KEYS)
    if unknown:
        raise PricingError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    for key in ("provider", "model", "mode"):
        if key not in data:
            raise PricingError(f"{where}: missing field '{key}'")
    provider = _text(data["provider"], where, "provider")
    model = _text(data["model"], where, "model")
    mode = data["mode"]
    if mode not in MODES:
        raise PricingError(f"{where}: field 'mode' must be 'batch' or 'standard', got {mode!r}")
    aliases_raw = data.get("aliases", [])
    if not isinstance(aliases_raw, list):
        raise PricingError(f"{where}: field 'aliases' must be a list of strings")
    aliases = tuple(_text(a, where, "aliases") for a in aliases_raw)
    tiers_raw = data.get("tiers", [])
    if not isinstance(tiers_raw, list):
        raise PricingError(f"{where}: field 'tiers' must be a list of tables ([[price.tiers]])")
    tiers: list[Tier] = []
    for t_index, tier in enumerate(tiers_raw):
        t_where = f"{where}, tier {t_index + 1}"
        if not isinstance(tier, Mapping):
            raise PricingError(f"{t_where}: must be a table")
        t_unknown = sorted(set(tier) - _TIER_KEYS)
        if t_unknown:
            raise PricingError(f"{t_where}: unknown field(s) {', '.join(map(repr, t_unknown))}")
        threshold = tier.get("above_input_tokens")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise PricingError(f"{t_where}: field 'above_input_tokens' must be an integer >= 0")
        tiers.append(Tier(threshold, _rates(tier, t_where)))
    thresholds = [t.above_input_tokens for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise PricingError(f"{where}: two tiers have the same 'above_input_tokens'")
    return PriceRow(
        provider=provider,
        model=model,
        mode=cast(Mode, mode),
        rates=_rates(data, where),
        effective=_date(data["effective"], where, "effective") if "effective" in data else ALWAYS,
        aliases=aliases,
        tiers=tuple(sorted(tiers, key=lambda t: t.above_input_tokens)),
        source=str(data.get("source", "")),
        checked_on=_date(data["checked_on"], where, "checked_on") if "checked_on" in data else None,
        origin=origin,
        entry=entry,
        **_facts(data, where),
    )


def parse_model(data: Any, origin: str, index: int, *, key: str = "model") -> list[PriceRow]:
    """One ``[[model]]`` entry as its PriceRows (one per mode and period)."""
    entry = f"{key}[{index + 1}]"
    where = f"{origin}: model {index + 1}"
    if not isinstance(data, Mapping):
        raise PricingError(f"{where}: must be a table, not {type(data).__name__}")
    if isinstance(data.get("name"), str):
        where += f" ({data['name']})"
    _known(data, _ENTRY_KEYS, where)
    for key in ("provider", "name"):
        if key not in data:
            raise PricingError(f"{where}: missing field '{key}'")
    if "periods" in data:
        inline = sorted(set(data) & _PERIOD_ONLY_KEYS)
        if inline:
            raise PricingError(
                f"{where}: field(s) {', '.join(map(repr, inline))} belong in its periods "
                f"([[model.periods]]) when it has periods"
            )
        periods = data["periods"]
        if not isinstance(periods, list) or not periods:
            raise PricingError(f"{where}: field 'periods' must be a non-empty list of tables")
    else:
        periods = [{k: data[k] for k in _PERIOD_KEYS if k in data}]
    rows: list[PriceRow] = []
    for p_index, period in enumerate(periods):
        p_where = where if "periods" not in data else f"{where}, period {p_index + 1}"
        if not isinstance(period, Mapping):
            raise PricingError(f"{p_where}: must be a table")
        _known(period, _PERIOD_KEYS, p_where)
        if not any(mode in period for mode in MODES):
            raise PricingError(f"{p_where}: gives neither 'standard' nor 'batch' rates")
        tiers = period.get("tiers", [])
        if not isinstance(tiers, list):
            raise PricingError(f"{p_where}: field 'tiers' must be a list of tables")
        for t_index, tier in enumerate(tiers):
            if not isinstance(tier, Mapping):
                raise PricingError(f"{p_where}, tier {t_index + 1}: must be a table")
            _known(tier, _MODEL_TIER_KEYS, f"{p_where}, tier {t_index + 1}")
        for mode in MODES:
            if mode not in period:
                continue
            table = period[mode]
            m_where = f"{p_where}, {mode}"
            if not isinstance(table, Mapping):
                raise PricingError(f"{m_where}: must be a table of rates")
            _known(table, _MODE_KEYS, m_where)
            row: dict[str, Any] = {
                "provider": data["provider"],
                "model": data["name"],
                "mode": mode,
                **{k: table[k] for k in RATE_KEYS if k in table},
                "aliases": data.get("aliases", []),
                "tiers": [
                    {"above_input_tokens": t.get("above_input_tokens"), **t[mode]}
                    if isinstance(t[mode], Mapping)
                    else t[mode]
                    for t in tiers
                    if mode in t
                ],
            }
            for name in ("effective", "source", "checked_on", *_LABEL_KEYS):
                for level in (table, period, data):
                    if name in level:
                        row[name] = level[name]
                        break
            row.update({name: data[name] for name in _MODEL_FACT_KEYS if name in data})
            rows.append(_row(row, m_where, origin, entry=entry))
    return rows


def _known(data: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - keys)
    if unknown:
        raise PricingError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")


def parse_rows(data: Any, origin: str, *, prefix: str = "") -> list[PriceRow]:
    """Rows from a parsed price document: ``{"model": [...], "price": [...]}`` or a bare list.

    ``model`` holds one entry per model, ``price`` rows in the older shape (either may be
    missing); a bare list is a list of older-shape rows. A top-level ``$schema`` is ignored. Two
    rows with the same (provider, model, mode, effective) in one document are an error.
    """
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"price", "model", "$schema"})
        if unknown:
            raise PricingError(
                f"{origin}: unknown top-level key(s) {', '.join(map(repr, unknown))}"
            )
        raw = data.get("price", [])
        models = data.get("model", [])
    else:
        raw, models = data, []
    if not isinstance(raw, list):
        raise PricingError(f"{origin}: 'price' must be a list of tables ([[price]])")
    if not isinstance(models, list):
        raise PricingError(f"{origin}: 'model' must be a list of tables ([[model]])")
    rows = [parse_row(item, origin, i, key=f"{prefix}price") for i, item in enumerate(raw)]
    where = [f"price row {i + 1}" for i in range(len(rows))]
    for i, entry in enumerate(models):
        parsed = parse_model(entry, origin, i, key=f"{prefix}model")
        rows.extend(parsed)
        where.extend([f"model {i + 1}"] * len(parsed))
    seen: dict[tuple[str, str, Mode, date], int] = {}
    for i, row in enumerate(rows):
        if row.key in seen:
            first, what = where[seen[row.key]], f"{row.provider}:{row.model} ({row.mode})"
            when = f"from {_show_date(row.effective)}"
            if first == where[i]:
                raise PricingError(f"{origin}: {first} prices {what} {when} twice")
            both = (
                f"price rows {seen[row.key] + 1} and {i + 1}"
                if first.startswith("price row") and where[i].startswith("price row")
                else f"{first} and {where[i]}"
            )
            raise PricingError(f"{origin}: {both} both price {what} {when}")
        seen[row.key] = i
    return rows


def load_price_file(path: str | Path) -> list[PriceRow]:
    """The rows of one TOML price file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise PricingError(f"{path}: cannot read price file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(f"{path}: not valid TOML: {exc}") from exc
    return parse_rows(data, str(path))


def _show_date(day: date) -> str:
    return "the start" if day == ALWAYS else day.isoformat()
