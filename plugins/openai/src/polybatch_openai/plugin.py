"""polybatch plugin entry point: registers the OpenAI provider and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .azure import AzureProvider
from .provider import OpenAIProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register the providers this plugin offers."""
    register(OpenAIProvider)
    register(AzureProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's price file, once it exists."""
    if PRICES.exists():
        register(PRICES)
