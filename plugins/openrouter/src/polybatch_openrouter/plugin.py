"""The entry point's module: the hooks that hand polybatch the provider and its prices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
OPENROUTER = LazyProvider(
    "openrouter",
    "polybatch_openrouter.provider:OpenRouterProvider",
    credential_env=("OPENROUTER_API_KEY",),
    max_requests=5_000,
    max_bytes=199_934_464,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    register(OPENROUTER)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    register(Path(__file__).with_name("prices.toml"))
