"""polybatch plugin entry point: provider ``anthropic`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import AnthropicProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register :class:`AnthropicProvider`."""
    register(AnthropicProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's prices, once the price file exists (written separately)."""
    if PRICES.exists():
        register(PRICES)
