"""pluggy hook specifications. Hooks only register things; behaviour lives on classes.

Every hook receives one argument, ``register``: a callable that records what the plugin offers.
polybatch calls each hook through pluggy once per plugin, when it loads the plugin (entry points
in the ``polybatch`` group are loaded lazily, on first use), and keeps what was registered in the
plugin registry's records (``polybatch.plugins.ProviderInfo``). A hook returns nothing, and a
plugin implements only the hooks it needs. ``docs/plugin-hooks.md`` documents each hook with an
example; ``tests/test_docs.py`` fails when a hook here is missing there or has no docstring.
"""

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
    """Call ``register(ProviderClass)`` once for each BatchProvider subclass the plugin offers.

    The class's ``name`` is the provider's one name (``name:model``, price and usage rows).
    Registering something that is not a BatchProvider subclass, or a name another plugin already
    registered, is a PluginError naming both plugins.
    """


@hookspec
def register_prices(register: Callable[[Path], None]) -> None:
    """Call ``register(path)`` with each price file (TOML) the plugin ships.

    One ``[[model]]`` entry per model (see ``polybatch.pricing.registry``; the JSON Schema is
    ``polybatch/pricing/prices.schema.json``). A plugin's files are read only when one of its
    providers is priced; when two plugins price the same row, the first loaded wins, with a warning.
    """


@hookspec
def register_provider_kinds(register: Callable[[str, Callable[..., type[Any]]], None]) -> None:
    """Call ``register(kind, factory)`` for each family of providers configured by data.

    A user's ``[providers.NAME]`` table with ``kind = "..."`` becomes a provider named NAME:
    ``factory(NAME, settings)`` returns its BatchProvider subclass (settings: the table without
    ``kind``). The provider's price files are those of the plugin that registered the kind.
    """
