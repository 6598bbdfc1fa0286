"""polybatch plugin entry point: registers the Mistral provider and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
MISTRAL = LazyProvider(
    "mistral",
    "polybatch_mistral.provider:MistralProvider",
    credential_env=("MISTRAL_API_KEY",),
    max_requests=1_000_000,
    max_bytes=524_288_000,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register the providers this plugin offers."""
    register(MISTRAL)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's price file."""
    register(PRICES)
