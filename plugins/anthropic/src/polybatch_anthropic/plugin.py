"""polybatch plugin entry point: provider ``anthropic`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
ANTHROPIC = LazyProvider(
    "anthropic",
    "polybatch_anthropic.provider:AnthropicProvider",
    credential_env=("ANTHROPIC_API_KEY",),
    max_requests=100_000,
    max_bytes=268_435_456,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register :class:`AnthropicProvider`."""
    register(ANTHROPIC)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's prices, once the price file exists (written separately)."""
    if PRICES.exists():
        register(PRICES)
