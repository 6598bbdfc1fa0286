"""The registry that looks prices up by (provider, model, mode, date), with dated periods and aliases.

The rows come from price files (:mod:`polybatch.pricing.files`: the format, its schema and the
loader, whose names are re-exported here): the plugins' bundled files, then the user's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import PriceNotFoundError, PricingError
from .files import (
    ALWAYS,
    MODES,
    RATE_KEYS,
    SCHEMA_FILE,
    Mode,
    PriceRow,
    Rates,
    Tier,
    _show_date,
    load_price_file,
    parse_model,
    parse_row,
    parse_rows,
    strip_date_suffix,
)

__all__ = [
    "ALWAYS",
    "MODES",
    "RATE_KEYS",
    "SCHEMA_FILE",
    "Mode",
    "PriceRegistry",
    "PriceRow",
    "Rates",
    "Tier",
    "load_price_file",
    "parse_model",
    "parse_row",
    "parse_rows",
    "strip_date_suffix",
]


class PriceRegistry:
    """Price rows by (provider, model, mode), with dated periods and model aliases.

    Rows are added in increasing precedence: a row whose (provider, model, mode, effective) equals
    an earlier row's replaces it. :meth:`load` adds bundled plugin rows first, then user rows.
    """

    def __init__(self, rows: Iterable[PriceRow] = ()) -> None:
        self._rows: dict[tuple[str, str, Mode, date], PriceRow] = {}
        #: (provider, alias) -> canonical model name
        self._aliases: dict[tuple[str, str], str] = {}
        self.add_rows(rows)

    # -- building --------------------------------------------------------------------------
    def add_rows(self, rows: Iterable[PriceRow]) -> None:
        """Add rows; a row replaces an existing one with the same key (overrides win)."""
        for row in rows:
            # a name must mean one model: an alias may not be another model's name, nor the reverse
            owner = self._aliases.get((row.provider, row.model))
            if owner is not None and owner != row.model:
                raise PricingError(
                    f"{row.origin}: {row.provider}:{row.model} is already an alias of "
                    f"{row.provider}:{owner}"
                )
            names = self._names(row.provider)
            for alias in row.aliases:
                known = self._aliases.get((row.provider, alias))
                if (known is not None and known != row.model) or (
                    alias in names and alias != row.model
                ):
                    raise PricingError(
                        f"{row.origin}: alias {alias!r} of {row.provider}:{row.model} already "
                        f"names {row.provider}:{known or alias}"
                    )
                self._aliases[(row.provider, alias)] = row.model
            self._rows[row.key] = row

    @classmethod
    def load(
        cls,
        *,
        files: Iterable[str | Path] | None = None,
        user_file: str | Path | None = None,
        user_prices: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        base_dir: str | Path | None = None,
    ) -> PriceRegistry:
        """Bundled rows, then the user's, later ones winning for the same key.

        ``files``: bundled price files; by default those the installed plugins register
        (``polybatch.plugins.get_registry().price_files()``). Two bundled files pricing the same
        key keep the first, with a warning (one plugin's data must not silently reprice another's).

        ``user_file``: a price file of the user's (same format), overriding bundled rows.

        ``user_prices``: the ``[prices]`` table of the user's config, overriding both::

            [prices]
            file = "my-prices.toml"     # optional: one more price file (relative: to base_dir)
            [[prices.model]]            # entries exactly as in a price file
            provider = "openai"
            name = "gpt-4o-mini"
            batch = { input = "0.07", output = "0.28" }
            [[prices.price]]            # rows in the older shape are read too
            provider = "openai"
            model = "o3"
            mode = "batch"
            input = "0.9"
            output = "3.6"

        (a bare list of older-shape row tables is accepted too). ``base_dir`` (the config file's directory)
        anchors a relative ``file``; without it, the current directory does.
        """
        registry = cls()
        if files is None:
            from ..plugins import get_registry

            files = get_registry().price_files()
        bundled: dict[tuple[str, str, Mode, date], PriceRow] = {}
        for path in files:
            for row in load_price_file(path):
                if row.key in bundled:
                    first = bundled[row.key]
                    warnings.warn(
                        f"polybatch: {row.origin} and {first.origin} both price "
                        f"{row.provider}:{row.model} ({row.mode}) from {_show_date(row.effective)}; "
                        f"keeping {first.origin}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                bundled[row.key] = row
        registry.add_rows(bundled.values())
        if user_file is not None:
            registry.add_rows(load_price_file(user_file))
        if user_prices is not None:
            registry.add_rows(_config_rows(user_prices, Path(base_dir or ".")))
        return registry

    # -- queries ---------------------------------------------------------------------------
    def rows(self) -> list[PriceRow]:
        """Every row, sorted by provider, model, mode and date."""
        return sorted(self._rows.values(), key=lambda r: (r.provider, r.model, r.mode, r.effective))

    def __iter__(self) -> Iterator[PriceRow]:
        return iter(self.rows())

    def __len__(self) -> int:
        return len(self._rows)

    def resolve_model(self, provider: str, model: str) -> str | None:
        """The canonical model name the registry prices ``model`` under, or None.

        Tries the exact name, then a listed alias, then (only as a fallback) the name without a
        ``-YYYY-MM-DD`` / ``-YYYYMMDD`` suffix the provider appended.
        """
        names = self._names(provider)
        candidates = [model]
        stripped = strip_date_suffix(model)
        if stripped != model:
            candidates.append(stripped)
        for name in candidates:
            if name in names:
                return name
            alias = self._aliases.get((provider, name))
            if alias is not None:
                return alias
        return None

    def find(self, provider: str, model: str, mode: Mode, on: date) -> PriceRow | None:
        """The row in force on ``on`` (the latest ``effective`` <= ``on``), or None."""
        if isinstance(on, datetime):
            on = on.date()
        name = self.resolve_model(provider, model)
        if name is None:
            return None
        best: PriceRow | None = None
        for row in self._rows.values():
            if (row.provider, row.model, row.mode) != (provider, name, mode):
                continue
            if row.effective <= on and (best is None or row.effective > best.effective):
                best = row
        return best

    def price(self, provider: str, model: str, mode: Mode, on: date) -> PriceRow:
        """Like :meth:`find`, but a missing price raises PriceNotFoundError."""
        row = self.find(provider, model, mode, on)
        if row is not None:
            return row
        day = on.date() if isinstance(on, datetime) else on
        name = self.resolve_model(provider, model)
        if name is None:
            known = sorted(self._names(provider))
            hint = f"; priced {provider} models: {', '.join(known)}" if known else ""
            reason = f"no price for model {model!r} of provider {provider!r}{hint}"
        else:
            periods = sorted(
                r.effective
                for r in self._rows.values()
                if (r.provider, r.model) == (provider, name) and r.mode == mode
            )
            shown = name if name == model else f"{model!r} (= {name})"
            if periods:
                reason = (
                    f"no {mode} price for {provider}:{shown} on {day.isoformat()}; "
                    f"its {mode} prices start on {_show_date(periods[0])}"
                )
            else:
                reason = f"no {mode} price for {provider}:{shown} (on {day.isoformat()})"
        raise PriceNotFoundError(
            f"{reason} [provider={provider}, model={model}, mode={mode}, date={day.isoformat()}]; "
            f"add a row to the [prices] table of your config"
        )

    def _names(self, provider: str) -> set[str]:
        return {r.model for r in self._rows.values() if r.provider == provider}


def _config_rows(
    user_prices: Mapping[str, Any] | Sequence[Mapping[str, Any]], base_dir: Path
) -> list[PriceRow]:
    """Rows from the config's ``[prices]`` table (see PriceRegistry.load)."""
    if isinstance(user_prices, Mapping):
        unknown = sorted(set(user_prices) - {"file", "price", "model"})
        if unknown:
            raise PricingError(f"config [prices]: unknown key(s) {', '.join(map(repr, unknown))}")
        rows: list[PriceRow] = []
        if "file" in user_prices:
            file = user_prices["file"]
            if not isinstance(file, str | Path):
                raise PricingError("config [prices]: 'file' must be a path string")
            rows.extend(load_price_file(base_dir / Path(file).expanduser()))
        rows.extend(
            parse_rows(
                {key: user_prices[key] for key in ("price", "model") if key in user_prices},
                "config [prices]",
            )
        )
        return rows
    return parse_rows(list(user_prices), "config [prices]")
