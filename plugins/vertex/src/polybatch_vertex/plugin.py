"""polybatch plugin entry point: provider ``vertex`` and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import VertexProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register :class:`VertexProvider`."""
    register(VertexProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's Vertex AI standard and batch prices."""
    register(PRICES)
