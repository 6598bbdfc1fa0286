"""The prices in force: the installed plugins' price files, overridden by the user's.

The registry is cached per (plugin registry, config file, price file, providers) and reloaded on
request (``reload=True``), so a long-lived process sees a changed file when it asks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from .. import config as _config
from ..errors import PricingError
from ..plugins import get_registry
from .registry import PriceRegistry, load_price_file

_registry_cache: dict[
    tuple[int, str | None, str | None, tuple[str, ...] | None], PriceRegistry
] = {}


def price_registry(
    price_file: str | Path | None = None,
    *,
    providers: Iterable[str] | None = None,
    reload: bool = False,
) -> PriceRegistry:
    """Bundled prices of the installed plugins, overridden by the user's config and price file.

    ``providers`` limits the bundled files to those of the plugins providing them.
    """
    cfg, path = _config.load_config()
    wanted = tuple(sorted(providers)) if providers is not None else None
    # the plugin registry is part of the key: tests (and the conformance suite) swap it
    key = (
        id(get_registry()),
        str(path) if path else None,
        str(price_file) if price_file else None,
        wanted,
    )
    if reload:
        _registry_cache.clear()
    if key not in _registry_cache:
        _registry_cache[key] = PriceRegistry.load(
            files=_readable_plugin_price_files(wanted),
            user_file=price_file,
            user_prices=cfg.prices or None,
            base_dir=path.parent if path else None,
            config_file=path,
            # checking the user's rows needs every provider's name (which loads every plugin):
            # only when there are user rows, so a plain job imports its own provider's SDK only
            known_providers=get_registry().providers() if cfg.prices or price_file else None,
        )
    return _registry_cache[key]


def _readable_plugin_price_files(providers: Iterable[str] | None = None) -> list[Path]:
    """The plugins' price files, a broken one skipped with a warning (as a broken plugin is).

    One plugin's bad data must not stop jobs on every other provider; the user's own price
    files, by contrast, raise: they asked for them.
    """
    good = []
    for path in get_registry().price_files(providers):
        try:
            load_price_file(path)
        except PricingError as exc:
            warnings.warn(
                f"polybatch: skipping a plugin's price file: {exc}", RuntimeWarning, stacklevel=3
            )
            continue
        good.append(path)
    return good
