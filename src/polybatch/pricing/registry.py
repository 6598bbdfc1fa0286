"""The registry that looks prices up by (provider, model, mode, date), with dated periods and aliases.

The rows come from price files (:mod:`polybatch.pricing.files`: the format, its schema and the
loader, whose names are re-exported here): the plugins' bundled files, then the user's.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PriceNotFoundError, PricingError
from .files import (
    SCHEMA_FILE,
    _show_date,
    load_price_file,
    parse_model,
    parse_row,
    parse_rows,
    strip_date_suffix,
)
from .rows import ALWAYS, DEFAULT_CURRENCY, MODES, RATE_KEYS, Mode, PriceRow, Rates, Tier

__all__ = [
    "ALWAYS",
    "DEFAULT_CURRENCY",
    "MODES",
    "RATE_KEYS",
    "SCHEMA_FILE",
    "Mode",
    "PriceRegistry",
    "PriceRow",
    "PriceTargetError",
    "Rates",
    "Tier",
    "load_price_file",
    "parse_model",
    "parse_row",
    "parse_rows",
    "strip_date_suffix",
]


#: the family of a model name: its leading letters (``gpt``, ``claude``, ``o`` of ``o3``)
_FAMILY = re.compile(r"^[A-Za-z]+")


class PriceTargetError(ConfigError):
    """A user's price row names a provider or model family polybatch does not know (a typo such
    as ``"OpenAI"`` for ``"openai"`` would otherwise never take effect).

    A ConfigError, not a PricingError: submitting refuses to start (exit code 2) rather than
    running without an estimate, as it does when a model merely has no price.
    """


def model_family(model: str) -> str:
    """``gpt-4o-mini`` -> ``gpt``; ``ft:gpt-4o:org::id`` -> ``gpt``; ``o3`` -> ``o``."""
    name = model.removeprefix("ft:").rsplit("/", 1)[-1]
    found = _FAMILY.match(name)
    return found.group(0) if found else name


class PriceRegistry:
    """Price rows by (provider, model, mode), with dated periods and model aliases.

    Two layers: bundled rows (the plugins' files) and user rows (the user's price file and
    config, ``user=True``). A user row overrides the bundled rows of the same provider, model and
    mode from its ``effective`` date on (default: always), whatever dated bundled rows follow;
    before that date the bundled rows apply. Within a layer, a row whose (provider, model, mode,
    effective) equals an earlier row's replaces it, and the latest ``effective`` on or before the
    day asked wins. A user row naming a bundled alias prices the model the alias names.
    """

    def __init__(self, rows: Iterable[PriceRow] = ()) -> None:
        self._rows: dict[tuple[str, str, Mode, date], PriceRow] = {}
        self._user: dict[tuple[str, str, Mode, date], PriceRow] = {}
        #: (provider, alias) -> canonical model name
        self._aliases: dict[tuple[str, str], str] = {}
        self.add_rows(rows)

    # -- building --------------------------------------------------------------------------
    def add_rows(self, rows: Iterable[PriceRow], *, user: bool = False) -> None:
        """Add rows; a row replaces an existing one with the same key in its layer.

        ``user=True`` adds them to the user layer (overrides: see the class docstring).
        """
        for row in rows:
            if user or row.user:
                # a bundled alias names a bundled model: the override prices that model
                canonical = self._aliases.get((row.provider, row.model), row.model)
                row = replace(row, model=canonical, user=True)
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
            (self._user if row.user else self._rows)[row.key] = row

    def check_user_rows(self, providers: Iterable[str]) -> None:
        """Refuse (PriceTargetError) a user row whose provider is not among ``providers``, or
        whose model family (:func:`model_family`) no bundled row has, when its provider has
        bundled rows at all."""
        known = set(providers)
        for row in self._user.values():
            where = f"{row.origin}: key '{row.entry or 'price'}"
            if row.provider not in known:
                near = [p for p in sorted(known) if p.lower() == row.provider.lower()]
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise PriceTargetError(
                    f"{where}.provider': unknown provider {row.provider!r}{hint}; "
                    f"known providers: {', '.join(sorted(known)) or 'none'}"
                )
            if not any(r.provider == row.provider for r in self._rows.values()):
                continue  # nothing bundled to compare with (a provider the config defines)
            # families of every bundled model: Azure serves OpenAI's, compatible hosts others'
            families = {model_family(r.model) for r in self._rows.values()}
            families |= {model_family(alias) for (_, alias) in self._aliases}
            if model_family(row.model) not in families:
                raise PriceTargetError(
                    f"{where}.{'name' if row.entry.split('[')[0].endswith('model') else 'model'}'"
                    f": unknown model family {model_family(row.model)!r} of provider "
                    f"{row.provider!r} in {row.model!r}; known families: "
                    f"{', '.join(sorted(families))}"
                )

    @classmethod
    def load(
        cls,
        *,
        files: Iterable[str | Path] | None = None,
        user_file: str | Path | None = None,
        user_prices: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        base_dir: str | Path | None = None,
        config_file: str | Path | None = None,
        known_providers: Iterable[str] | None = None,
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
        anchors a relative ``file``; without it, the current directory does. ``config_file``
        names the config in messages and in the rows' ``origin``.

        User rows override as the class docstring says. With ``known_providers``, a user row
        naming another provider, or a model family none of its bundled rows has, is a
        :class:`PriceTargetError` (a ConfigError) naming the file and the key.
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
            registry.add_rows(load_price_file(user_file), user=True)
        if user_prices is not None:
            registry.add_rows(
                _config_rows(user_prices, Path(base_dir or "."), config_file), user=True
            )
        if known_providers is not None:
            registry.check_user_rows(known_providers)
        return registry

    # -- queries ---------------------------------------------------------------------------
    def rows(self) -> list[PriceRow]:
        """Every row of both layers, sorted by provider, model, mode, date (bundled before user)."""
        return sorted(
            [*self._rows.values(), *self._user.values()],
            key=lambda r: (r.provider, r.model, r.mode, r.effective, r.user),
        )

    def in_force(self, on: date) -> list[PriceRow]:
        """The row in force on ``on`` for each (provider, model, mode) priced that day."""
        keys = sorted({(r.provider, r.model, r.mode) for r in self.rows()})
        found = (self.find(p, m, mode, on) for p, m, mode in keys)
        return [row for row in found if row is not None]

    def __iter__(self) -> Iterator[PriceRow]:
        return iter(self.rows())

    def __len__(self) -> int:
        return len(self._rows) + len(self._user)

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
        for layer in (self._user, self._rows):  # a user row in force beats any bundled row
            best: PriceRow | None = None
            for row in layer.values():
                if (row.provider, row.model, row.mode) != (provider, name, mode):
                    continue
                if row.effective <= on and (best is None or row.effective > best.effective):
                    best = row
            if best is not None:
                return best
        return None

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
                for r in self.rows()
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
        return {
            r.model for r in (*self._rows.values(), *self._user.values()) if r.provider == provider
        }


def _config_rows(
    user_prices: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    base_dir: Path,
    config_file: str | Path | None = None,
) -> list[PriceRow]:
    """Rows from the config's ``[prices]`` table (see PriceRegistry.load)."""
    origin = f"{config_file} [prices]" if config_file else "config [prices]"
    if isinstance(user_prices, Mapping):
        unknown = sorted(set(user_prices) - {"file", "price", "model"})
        if unknown:
            raise PricingError(f"{origin}: unknown key(s) {', '.join(map(repr, unknown))}")
        rows: list[PriceRow] = []
        if "file" in user_prices:
            file = user_prices["file"]
            if not isinstance(file, str | Path):
                raise PricingError(f"{origin}: 'file' must be a path string")
            rows.extend(load_price_file(base_dir / Path(file).expanduser()))
        rows.extend(
            parse_rows(
                {key: user_prices[key] for key in ("price", "model") if key in user_prices},
                origin,
                prefix="prices.",
            )
        )
        return rows
    return parse_rows(list(user_prices), origin, prefix="prices.")
