"""polybatch plugin entry point: provider ``vertex`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
VERTEX = LazyProvider(
    "vertex",
    "polybatch_vertex.provider:VertexProvider",
    credential_env=("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"),
    max_requests=200_000,
    max_bytes=1_073_741_824,
    credentials_check="polybatch_vertex.credentials:credentials_present",
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register :class:`VertexProvider`."""
    register(VERTEX)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Vertex AI standard and batch prices."""
    register(PRICES)
