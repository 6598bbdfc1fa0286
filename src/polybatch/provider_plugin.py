"""``ProviderPlugin``: a provider plugin's hooks as one object, built from what it offers.

Most plugins offer providers, a price file and sometimes a family of configured providers, and
their hooks only hand those over. Instead of writing the same ``@hookimpl`` functions again, a
plugin module builds one object and its entry point names it::

    # src/polybatch_acme/plugin.py
    plugin = ProviderPlugin(AcmeProvider, prices=Path(__file__).with_name("prices.toml"))

    # pyproject.toml
    [project.entry-points.polybatch]
    acme = "polybatch_acme.plugin:plugin"

pluggy registers the object as it registers a module: each method below is a hookimpl
(:mod:`polybatch.hookspecs` documents the hooks). A module of ``@hookimpl`` functions still works,
for a plugin whose hooks do more than hand things over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .hookspecs import hookimpl

__all__ = ["ProviderPlugin", "lazy_getattr"]


class ProviderPlugin:
    """The hooks of a plugin that registers ``providers``, ``prices`` files and provider ``kinds``.

    ``providers``: BatchProvider subclasses, or :class:`polybatch.plugins.LazyProvider` records
    (registered by import path, so loading the plugin does not import the vendor's SDK).
    ``prices``: one price file or several. ``kinds``: ``{kind: factory}`` for the providers a
    user's config defines with ``kind = "..."`` (see ``register_provider_kinds``).
    """

    def __init__(
        self,
        *providers: Any,
        prices: Path | Iterable[Path] = (),
        kinds: Mapping[str, Callable[..., type[Any]]] | None = None,
    ) -> None:
        self.providers = providers
        self.prices = (prices,) if isinstance(prices, Path) else tuple(prices)
        self.kinds = dict(kinds or {})

    def __repr__(self) -> str:
        names = ", ".join(str(getattr(p, "name", p)) for p in self.providers)
        return f"ProviderPlugin({names})"

    @hookimpl
    def register_providers(self, register: Callable[[Any], None]) -> None:
        """Register each provider the plugin offers."""
        for provider in self.providers:
            register(provider)

    @hookimpl
    def register_prices(self, register: Callable[[Path], None]) -> None:
        """Register the plugin's price files."""
        for path in self.prices:
            register(path)

    @hookimpl
    def register_provider_kinds(
        self, register: Callable[[str, Callable[..., type[Any]]], None]
    ) -> None:
        """Register the families of providers configured by data."""
        for kind, factory in self.kinds.items():
            register(kind, factory)


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) that imports ``names`` on first access.

    ``names`` maps each public name to the submodule holding it, so that loading a plugin
    (``polybatch --help``, ``polybatch providers``) imports no SDK until the provider is used::

        __getattr__ = lazy_getattr(__name__, {"AcmeProvider": "provider"})
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            from importlib import import_module

            return getattr(import_module(f".{names[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
