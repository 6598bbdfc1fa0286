"""polybatch plugin entry point: provider ``bedrock`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
BEDROCK = LazyProvider(
    "bedrock",
    "polybatch_bedrock.provider:BedrockProvider",
    credential_env=("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
    max_requests=50_000,
    max_bytes=1_000_000_000,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register :class:`BedrockProvider`."""
    register(BEDROCK)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Bedrock batch prices."""
    register(PRICES)
