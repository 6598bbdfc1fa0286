"""polybatch plugin entry point: provider ``bedrock`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import BedrockProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register :class:`BedrockProvider`."""
    register(BedrockProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Bedrock batch prices."""
    register(PRICES)
