"""pluggy hook specifications. Hooks only register things; behaviour lives on classes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

PROJECT = "polybatch"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Call ``register(ProviderClass)`` once for each BatchProvider subclass the plugin offers."""


@hookspec
def register_prices(register: Callable[[Path], None]) -> None:
    """Call ``register(path)`` with each price file (TOML) the plugin ships."""


@hookspec
def register_provider_kinds(register: Callable[[str, Callable[..., type[Any]]], None]) -> None:
    """Call ``register(kind, factory)`` for each family of providers configured by data.

    A user's ``[providers.NAME]`` table with ``kind = "..."`` becomes a provider named NAME:
    ``factory(NAME, settings)`` returns its BatchProvider subclass.
    """
