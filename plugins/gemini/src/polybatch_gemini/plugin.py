"""polybatch plugin entry point: provider ``gemini`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
GEMINI = LazyProvider(
    "gemini",
    "polybatch_gemini.provider:GeminiProvider",
    credential_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    max_requests=100_000,
    max_bytes=2_147_483_648,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register :class:`GeminiProvider`."""
    register(GEMINI)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Gemini standard and batch prices."""
    register(PRICES)
