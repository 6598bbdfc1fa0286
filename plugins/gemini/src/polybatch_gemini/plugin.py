"""polybatch plugin entry point: provider ``gemini`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import GeminiProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register :class:`GeminiProvider`."""
    register(GeminiProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Gemini standard and batch prices."""
    register(PRICES)
