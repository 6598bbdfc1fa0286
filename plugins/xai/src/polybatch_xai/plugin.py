"""The entry point's module: the hooks that hand polybatch the provider and its prices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import XAIProvider


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    register(XAIProvider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    register(Path(__file__).with_name("prices.toml"))
