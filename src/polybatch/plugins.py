"""Plugin loading: entry points in the ``polybatch`` group, loaded lazily, once.

A plugin that fails to import or to register is skipped with a warning, so one broken plugin does
not take the others down; ``POLYBATCH_STRICT_PLUGINS=1`` re-raises instead (for plugin authors).
``POLYBATCH_DISABLE_PLUGINS`` is a comma-separated list of entry-point names to skip (``*``: all).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, PolybatchError, UnknownProviderError
from .providers import BatchProvider

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "polybatch"


class PluginRegistry:
    """The providers and price files that the installed plugins register."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._providers: dict[str, type[BatchProvider]] = {}
        #: (plugin name, price file) in load order
        self._price_files: list[tuple[str, Path]] = []
        #: plugin name -> why it was skipped
        self.skipped: dict[str, str] = {}
        #: entry point names already loaded (or skipped)
        self._tried: set[str] = set()
        #: provider kinds (families configured by data) -> (plugin name, factory)
        self._kinds: dict[str, tuple[str, Callable[..., type[BatchProvider]]]] = {}

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
        """Register a plugin object (a module or instance with hookimpls) and collect what it offers."""
        with self._lock:
            new: dict[str, type[BatchProvider]] = {}
            prices: list[Path] = []
            kinds: dict[str, Callable[..., type[BatchProvider]]] = {}

            def register_provider(cls: type[Any]) -> None:
                if not (isinstance(cls, type) and issubclass(cls, BatchProvider)):
                    raise PluginError(f"plugin {name!r} registered {cls!r}, not a BatchProvider")
                if cls.name in new or cls.name in self._providers:
                    other = (new.get(cls.name) or self._providers[cls.name]).plugin_dist
                    raise PluginError(
                        f"provider name {cls.name!r} is registered twice: by {other or '?'} "
                        f"and by {dist or name}"
                    )
                new[cls.name] = cls

            self.pm.register(plugin, name=name)
            try:
                # call only this plugin's hooks, so each registration is attributed to it
                for impl in self.pm.hook.register_providers.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(register=register_provider)
                for impl in self.pm.hook.register_prices.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(register=lambda p: prices.append(Path(p)))
                for impl in self.pm.hook.register_provider_kinds.get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(
                            register=lambda kind, factory: kinds.__setitem__(kind, factory)
                        )
            except BaseException:
                self.pm.unregister(plugin)
                raise
            for cls in new.values():
                cls.plugin_dist = dist or name
                cls.plugin_name = name
            self._providers.update(new)
            self._price_files.extend((name, p) for p in prices)
            for kind, factory in kinds.items():
                self._kinds[kind] = (name, factory)

    # -- queries ---------------------------------------------------------------------------
    def providers(self) -> dict[str, type[BatchProvider]]:
        """Every registered provider class by name, with those the user's config defines."""
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
            plugin, factory = self._kinds[kind]
            cls = factory(name, {k: v for k, v in settings.items() if k != "kind"})
            cls.plugin_dist = f"{kind} (from {path})"
            cls.plugin_name = plugin
            self._providers[name] = cls

    def provider_class(self, name: str) -> type[BatchProvider]:
        """The class registered under ``name``, or an error listing the installed ones."""
        self._load_named(name)
        if name in self._providers:
            return self._providers[name]
        self._configured_providers(only=name)
        providers = self.providers()
        if name not in providers:
            installed = ", ".join(sorted(providers)) or "none"
            hint = ""
            if name in self.skipped:
                hint = f" (its plugin was skipped: {self.skipped[name]})"
            raise UnknownProviderError(
                f"unknown provider {name!r}{hint}; installed providers: {installed}"
            )
        return providers[name]

    def price_files(self, providers: Iterable[str] | None = None) -> list[Path]:
        """The price files registered by plugins, in load order.

        With ``providers``, only the files of the plugins that provide them are loaded and
        returned (so estimating an OpenAI job does not import every other SDK).
        """
        if providers is None:
            self._ensure_loaded()
            return [p for _, p in self._price_files]
        plugins = {self.provider_class(name).plugin_name for name in providers}
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
