"""Plugin loading: entry points in the ``polybatch`` group, loaded lazily, once.

A plugin that fails to import or to register is skipped with a warning, so one broken plugin does
not take the others down; ``POLYBATCH_STRICT_PLUGINS=1`` re-raises instead (for plugin authors).
``POLYBATCH_DISABLE_PLUGINS`` is a comma-separated list of entry-point names to skip (``*``: all).

Every hook (:mod:`polybatch.hookspecs`, documented in ``docs/plugin-hooks.md``) is called through
pluggy, one plugin at a time, with a ``register`` closure that collects what the plugin offers
into records: a :class:`ProviderInfo` per provider (its class, the plugin and distribution that
registered it). Nothing is written onto the provider classes.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, PolybatchError, UnknownProviderError
from .providers import BatchProvider

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "polybatch"


@dataclass(frozen=True)
class LazyProvider:
    """A provider registered by import path: registering it imports nothing (not its SDK).

    What ``polybatch providers`` shows comes from these fields; the class (``"module:Class"``)
    is imported on first use (:attr:`ProviderInfo.provider_class`). The conformance suite checks
    that the fields match the class, so they cannot drift.
    """

    #: the provider's name (``BatchProvider.name``)
    name: str
    #: ``"package.module:ClassName"``
    path: str
    #: ``BatchProvider.credential_env``
    credential_env: tuple[str, ...] = ()
    #: ``BatchProvider.limits.max_requests`` and ``max_bytes``
    max_requests: int = 0
    max_bytes: int = 0
    #: ``"module:function"``: a ``(env) -> bool`` credential check, for a provider whose
    #: ``credentials_present`` looks beyond its variables (a login file); imported when asked
    credentials_check: str | None = None

    def load(self) -> type[BatchProvider]:
        """Import the class; a PluginError if it is not the BatchProvider named ``name``."""
        cls = _import(self.path)
        if not (isinstance(cls, type) and issubclass(cls, BatchProvider)) or cls.name != self.name:
            raise PluginError(f"{self.path} is not the BatchProvider {self.name!r}")
        return cls

    def credentials_present(self, env: Mapping[str, str] | None = None) -> bool:
        """``BatchProvider.credentials_present`` without importing the class."""
        env = os.environ if env is None else env
        if self.credentials_check is not None:
            return bool(_import(self.credentials_check)(env))
        return any(env.get(name) for name in self.credential_env)


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


#: the classes of the lazily registered providers, once imported
_loaded: dict[LazyProvider, type[BatchProvider]] = {}
_loaded_lock = threading.Lock()


@dataclass(frozen=True)
class ProviderInfo:
    """The registry's record of one provider: its class and where it comes from.

    Kept by the registry, not stamped on the class, so a class registered by several registries
    (the process-wide one, a test's, the conformance suite's) carries no trace of any of them.
    """

    #: the provider's one name (``BatchProvider.name``, the prefix of ``"name:model"``)
    name: str
    #: the class, or the :class:`LazyProvider` that imports it on first use
    target: type[BatchProvider] | LazyProvider
    #: the plugin (entry point) name that registered it; price files are looked up by plugin
    plugin: str
    #: the installed distribution of that plugin, when it came from an entry point
    distribution: str | None = None
    #: for a provider the config defines (``[providers.NAME]`` with ``kind``): the kind...
    kind: str | None = None
    #: ...and the config file that defines it
    config: Path | None = None

    @property
    def provider_class(self) -> type[BatchProvider]:
        """The provider's class (imported now if it was registered by path)."""
        if not isinstance(self.target, LazyProvider):
            return self.target
        with _loaded_lock:
            if self.target not in _loaded:
                try:
                    _loaded[self.target] = self.target.load()
                except PluginError:
                    raise
                except Exception as exc:  # its SDK is missing or broken: one line, not a trace
                    raise PluginError(
                        f"provider {self.name!r} ({self.target.path}) failed to load: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            return _loaded[self.target]

    @property
    def loaded(self) -> bool:
        """Whether the class is imported (always, for a class registered as a class)."""
        return not isinstance(self.target, LazyProvider) or self.target in _loaded

    @property
    def credential_env(self) -> tuple[str, ...]:
        """The variables holding its credentials, without importing a lazy provider."""
        if isinstance(self.target, LazyProvider) and not self.loaded:
            return self.target.credential_env
        return tuple(self.provider_class.credential_env)

    @property
    def max_requests(self) -> int:
        """Its ``limits.max_requests``, without importing a lazy provider."""
        if isinstance(self.target, LazyProvider) and not self.loaded:
            return self.target.max_requests
        return self.provider_class.limits.max_requests

    @property
    def max_bytes(self) -> int:
        """Its ``limits.max_bytes``, without importing a lazy provider."""
        if isinstance(self.target, LazyProvider) and not self.loaded:
            return self.target.max_bytes
        return self.provider_class.limits.max_bytes

    def credentials_present(self, env: Mapping[str, str] | None = None) -> bool:
        """Whether its credentials are set, without importing a lazy provider."""
        if isinstance(self.target, LazyProvider) and not self.loaded:
            return self.target.credentials_present(env)
        return self.provider_class.credentials_present(env)

    @property
    def origin(self) -> str:
        """Where it comes from, for people: the distribution, the plugin, or the config's kind."""
        if self.kind is not None:
            return f"{self.kind} (from {self.config})"
        return self.distribution or self.plugin


class PluginRegistry:
    """The providers and price files that the installed plugins register."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[str, ProviderInfo] = {}
        #: (plugin name, price file) in load order
        self._price_files: list[tuple[str, Path]] = []
        #: plugin name -> why it was skipped
        self.skipped: dict[str, str] = {}
        #: entry point names already loaded (or skipped)
        self._tried: set[str] = set()
        #: provider kinds (families configured by data) -> (plugin name, its distribution, factory)
        self._kinds: dict[str, tuple[str, str | None, Callable[..., type[BatchProvider]]]] = {}

    # -- loading ---------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            if self._load_entry_points:
                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    if ep.name not in self._tried:
                        self._load_entry_point(ep)

    def _load_named(self, name: str) -> None:
        """Load only the entry point called ``name``: using one provider imports one SDK.

        Plugins name their entry point after their main provider; a provider registered under
        another name (``azure`` by the ``openai`` plugin) is found by loading them all.
        """
        with self._lock:
            if self._loaded or not self._load_entry_points or name in self._tried:
                return
            for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
                self._load_entry_point(ep)

    def _load_entry_point(self, ep: EntryPoint) -> None:
        self._tried.add(ep.name)
        disabled = {n.strip() for n in os.environ.get("POLYBATCH_DISABLE_PLUGINS", "").split(",")}
        if ep.name in disabled or "*" in disabled:
            self.skipped[ep.name] = "disabled by POLYBATCH_DISABLE_PLUGINS"
            return
        dist = ep.dist.name if ep.dist is not None else None
        try:
            plugin = ep.load()
            if self.pm.is_registered(plugin):
                return  # one module behind several entry point names
            self.add_plugin(plugin, name=ep.name, dist=dist)
        except PluginError:
            raise
        except Exception as exc:
            if os.environ.get("POLYBATCH_STRICT_PLUGINS") == "1":
                raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            self.skipped[ep.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"polybatch: skipping plugin {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )

    def add_plugin(self, plugin: Any, *, name: str, dist: str | None = None) -> None:
        """Register a plugin object (a module or instance with hookimpls) and collect what it offers.

        Each hook is called through pluggy for this plugin alone, so everything it registers is
        recorded as coming from ``name`` (and ``dist``); a plugin whose hooks fail is unregistered
        and nothing it offered is kept.
        """
        with self._lock:
            new: dict[str, ProviderInfo] = {}
            prices: list[Path] = []
            kinds: dict[str, Callable[..., type[BatchProvider]]] = {}

            def register_provider(cls: type[Any] | LazyProvider) -> None:
                lazy = isinstance(cls, LazyProvider)
                if not lazy and not (isinstance(cls, type) and issubclass(cls, BatchProvider)):
                    raise PluginError(f"plugin {name!r} registered {cls!r}, not a BatchProvider")
                if cls.name in new or cls.name in self._providers:
                    other = (new.get(cls.name) or self._providers[cls.name]).origin
                    raise PluginError(
                        f"provider name {cls.name!r} is registered twice: by {other} "
                        f"and by {dist or name}"
                    )
                new[cls.name] = ProviderInfo(cls.name, cls, plugin=name, distribution=dist)

            def register_prices(path: Path | str) -> None:
                prices.append(Path(path))

            def register_kind(kind: str, factory: Callable[..., type[BatchProvider]]) -> None:
                kinds[kind] = factory

            self.pm.register(plugin, name=name)
            try:
                self._call(plugin, "register_providers", register_provider)
                self._call(plugin, "register_prices", register_prices)
                self._call(plugin, "register_provider_kinds", register_kind)
            except BaseException:
                self.pm.unregister(plugin)
                raise
            self._providers.update(new)
            self._price_files.extend((name, p) for p in prices)
            for kind, factory in kinds.items():
                self._kinds[kind] = (name, dist, factory)

    def _call(self, plugin: object, hook: str, register: Callable[..., None]) -> None:
        """Call ``hook`` through pluggy for ``plugin`` alone, handing it ``register``."""
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        self.pm.subset_hook_caller(hook, remove_plugins=others)(register=register)

    # -- queries ---------------------------------------------------------------------------
    def providers(self) -> dict[str, type[BatchProvider]]:
        """Every registered provider class by name, with those the user's config defines."""
        return {name: info.provider_class for name, info in self.infos().items()}

    def infos(self) -> dict[str, ProviderInfo]:
        """The record of every registered provider by name, with those the user's config defines."""
        self._ensure_loaded()
        try:
            self._configured_providers()
        except PolybatchError as exc:
            warnings.warn(f"polybatch: {exc}", RuntimeWarning, stacklevel=2)
        return dict(self._providers)

    def _configured_providers(self, only: str | None = None) -> None:
        """Create the providers the config file defines by ``kind`` (``[providers.NAME]``)."""
        from .config import load_config

        cfg, path = load_config()
        for name, settings in cfg.providers.items():
            kind = settings.get("kind")
            if not kind or (only is not None and name != only) or name in self._providers:
                continue
            self._ensure_loaded()  # kinds come from plugins
            if kind not in self._kinds:
                known = ", ".join(sorted(self._kinds)) or "none"
                raise ConfigError(
                    f"{path}: key 'providers.{name}.kind': unknown kind {kind!r}; kinds: {known}"
                )
            plugin, dist, factory = self._kinds[kind]
            cls = factory(name, {k: v for k, v in settings.items() if k != "kind"})
            self._providers[name] = ProviderInfo(
                name, cls, plugin=plugin, distribution=dist, kind=kind, config=path
            )

    def provider_class(self, name: str) -> type[BatchProvider]:
        """The class registered under ``name``, or an error listing the installed ones."""
        return self.info(name).provider_class

    def info(self, name: str) -> ProviderInfo:
        """The record of the provider registered under ``name``, or an error listing the others."""
        self._load_named(name)
        if name in self._providers:
            return self._providers[name]
        self._configured_providers(only=name)
        infos = self.infos()
        if name not in infos:
            installed = ", ".join(sorted(infos)) or "none"
            hint = ""
            if name in self.skipped:
                hint = f" (its plugin was skipped: {self.skipped[name]})"
            raise UnknownProviderError(
                f"unknown provider {name!r}{hint}; installed providers: {installed}"
            )
        return infos[name]

    def price_files(self, providers: Iterable[str] | None = None) -> list[Path]:
        """The price files registered by plugins, in load order.

        With ``providers``, only the files of the plugins that provide them are loaded and
        returned (so estimating an OpenAI job does not import every other SDK).
        """
        if providers is None:
            self._ensure_loaded()
            return [p for _, p in self._price_files]
        plugins = {self.info(name).plugin for name in providers}
        return [p for plugin, p in self._price_files if plugin in plugins]


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry, created (not loaded) on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry()
        return _registry


def reset_registry(registry: PluginRegistry | None = None) -> None:
    """Replace the process-wide registry (tests use this to isolate plugins)."""
    global _registry
    with _registry_lock:
        _registry = registry
