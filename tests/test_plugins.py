"""The plugin seam: entry-point loading, broken plugins, duplicate names, model strings."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from polybatch import hookimpl, hookspecs
from polybatch.errors import PluginError, UnknownProviderError
from polybatch.items import BatchItem, BatchResult
from polybatch.plugins import PluginRegistry, ProviderInfo, get_registry
from polybatch.provider_plugin import ProviderPlugin
from polybatch.providers import BatchProvider, BatchStatus, Limits, SubmittedBatch, parse_model


def make_provider_class(name: str) -> type[BatchProvider]:
    class P(BatchProvider):
        limits = Limits(max_requests=10, max_bytes=1000)

        def encode(self, item: BatchItem, model: str) -> bytes:
            return b"{}"

        def submit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
            raise NotImplementedError

        def poll(self, batch_id: str) -> BatchStatus:
            raise NotImplementedError

        def results(self, batch_id: str) -> Iterator[BatchResult]:
            raise NotImplementedError

        def cancel(self, batch_id: str) -> None:
            raise NotImplementedError

    P.name = name
    return P


def plugin_module(*classes: type[BatchProvider]) -> types.ModuleType:
    mod = types.ModuleType("fake_plugin")

    @hookimpl
    def register_providers(register: Callable[[type[Any]], None]) -> None:
        for c in classes:
            register(c)

    mod.register_providers = register_providers  # type: ignore[attr-defined]
    return mod


def test_installed_plugins_load_through_entry_points() -> None:
    providers = get_registry().providers()
    assert "openai" in providers
    assert get_registry().info("openai").distribution == "polybatch-openai"


def test_duplicate_provider_names_are_an_error_naming_both() -> None:
    reg = PluginRegistry(load_entry_points=False)
    reg.add_plugin(plugin_module(make_provider_class("dup")), name="first", dist="dist-one")
    with pytest.raises(
        PluginError, match=r"'dup' is registered twice: by dist-one and by dist-two"
    ):
        reg.add_plugin(plugin_module(make_provider_class("dup")), name="second", dist="dist-two")
    assert reg.info("dup").distribution == "dist-one"


def test_registrations_are_records_and_the_class_is_left_alone() -> None:
    cls = make_provider_class("shared")
    one, two = PluginRegistry(load_entry_points=False), PluginRegistry(load_entry_points=False)
    one.add_plugin(plugin_module(cls), name="first", dist="dist-one")
    two.add_plugin(plugin_module(cls), name="second")
    assert one.info("shared") == ProviderInfo(
        "shared", cls, plugin="first", distribution="dist-one"
    )
    assert two.info("shared") == ProviderInfo("shared", cls, plugin="second")
    assert (one.info("shared").origin, two.info("shared").origin) == ("dist-one", "second")
    assert one.infos() == {"shared": one.info("shared")}
    assert one.provider_class("shared") is cls
    assert not {"plugin_dist", "plugin_name"} & set(vars(cls)), "nothing is stamped on the class"


def _all_hooks_plugin() -> types.ModuleType:
    mod = plugin_module(make_provider_class("everyhook"))

    @hookimpl
    def register_prices(register: Callable[[Path], None]) -> None:
        register(Path("prices.toml"))

    @hookimpl
    def register_provider_kinds(register: Callable[[str, Callable[..., Any]], None]) -> None:
        register("a-kind", lambda name, settings: make_provider_class(name))

    mod.register_prices = register_prices  # type: ignore[attr-defined]
    mod.register_provider_kinds = register_provider_kinds  # type: ignore[attr-defined]
    return mod


def _all_hooks_object() -> ProviderPlugin:
    return ProviderPlugin(
        make_provider_class("everyhook"),
        prices=Path("prices.toml"),
        kinds={"a-kind": lambda name, settings: make_provider_class(name)},
    )


@pytest.mark.parametrize("make", [_all_hooks_plugin, _all_hooks_object], ids=["module", "object"])
def test_every_hookspec_is_called_through_pluggy(make: Callable[[], object]) -> None:
    specs = {n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "polybatch_spec")}
    assert specs, "hookspecs are found by pluggy's marker"
    reg = PluginRegistry(load_entry_points=False)
    reg.add_plugin(plugin_module(make_provider_class("other")), name="other")
    called: list[tuple[str, list[object]]] = []
    reg.pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: called.append((hook, [i.plugin_name for i in impls])),
        lambda outcome, hook, impls, kwargs: None,
    )
    reg.add_plugin(make(), name="all")
    assert {hook for hook, _ in called} == specs
    # each call reached only the plugin being added
    assert all(plugins == ["all"] for _, plugins in called)
    assert reg.price_files(["everyhook"]) == [Path("prices.toml")]
    assert reg.price_files(["other"]) == []
    assert reg._kinds["a-kind"][0] == "all", "the kind is recorded as the plugin's"


def test_a_plugin_whose_hook_fails_leaves_nothing_behind() -> None:
    mod = _all_hooks_plugin()

    @hookimpl
    def register_provider_kinds(register: Callable[..., None]) -> None:
        raise RuntimeError("boom")

    mod.register_provider_kinds = register_provider_kinds  # type: ignore[attr-defined]
    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(RuntimeError, match="boom"):
        reg.add_plugin(mod, name="all")
    assert reg.infos() == {} and reg.price_files() == []
    assert not reg.pm.is_registered(mod)


def test_registering_a_non_provider_is_an_error() -> None:
    reg = PluginRegistry(load_entry_points=False)
    with pytest.raises(PluginError, match="not a BatchProvider"):
        reg.add_plugin(plugin_module(object), name="bad")  # type: ignore[arg-type]


def test_unknown_provider_lists_installed_ones() -> None:
    with pytest.raises(
        UnknownProviderError, match=r"unknown provider 'nope'; installed providers: .*openai"
    ):
        get_registry().provider_class("nope")


def _broken_ep(monkeypatch: pytest.MonkeyPatch) -> PluginRegistry:
    ep = EntryPoint(name="broken", value="polybatch_no_such_module.plugin", group="polybatch")
    good = EntryPoint(name="good", value="tests.test_plugins:GOOD", group="polybatch")
    monkeypatch.setattr("polybatch.plugins.entry_points", lambda group: [ep, good])
    return PluginRegistry()


GOOD = plugin_module(make_provider_class("goodprov"))


def test_a_broken_plugin_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = _broken_ep(monkeypatch)
    with pytest.warns(RuntimeWarning, match="skipping plugin 'broken'"):
        providers = reg.providers()
    assert "goodprov" in providers
    assert "ModuleNotFoundError" in reg.skipped["broken"]


def test_strict_mode_reraises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYBATCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="failed to load"):
        _broken_ep(monkeypatch).providers()


def test_disable_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYBATCH_DISABLE_PLUGINS", "broken, good")
    reg = _broken_ep(monkeypatch)
    assert reg.providers() == {}
    assert set(reg.skipped) == {"broken", "good"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("azure:my:deployment", ("azure", "my:deployment")),
        ("ollama:llama3:8b", ("ollama", "llama3:8b")),
    ],
)
def test_parse_model_splits_on_first_colon(spec: str, expected: tuple[str, str]) -> None:
    assert parse_model(spec) == expected


@pytest.mark.parametrize("spec", ["gpt-4o-mini", ":x", "openai:", ""])
def test_parse_model_rejects_bare_names(spec: str) -> None:
    with pytest.raises(UnknownProviderError, match="provider:model"):
        parse_model(spec)
