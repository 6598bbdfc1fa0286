"""Registering a provider imports nothing (issue 16, item 7): plugins register
:class:`~polybatch.plugins.LazyProvider` records by import path, the class is imported on first
use, and what the records say (``polybatch providers``) is what the classes say."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from polybatch.errors import PluginError
from polybatch.plugins import ENTRY_POINT_GROUP, LazyProvider, PluginRegistry, ProviderInfo
from polybatch.provider_plugin import ProviderPlugin
from polybatch.testing import FakeProvider


def lazy_records() -> list[LazyProvider]:
    records: list[LazyProvider] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = ep.load()
        hook = getattr(module, "register_providers", None)
        if hook is not None:
            hook(lambda p: records.append(p) if isinstance(p, LazyProvider) else None)
    return records


RECORDS = lazy_records()


def test_every_bundled_plugin_registers_by_import_path() -> None:
    names = {r.name for r in RECORDS}
    assert {"openai", "azure", "groq", "together", "anthropic", "gemini", "mistral"} <= names
    assert {"bedrock", "vertex", "openrouter", "xai"} <= names


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_the_record_says_what_the_class_says(record: LazyProvider) -> None:
    cls = record.load()
    assert cls.name == record.name
    assert tuple(cls.credential_env) == record.credential_env
    assert cls.limits.max_requests == record.max_requests
    assert cls.limits.max_bytes == record.max_bytes
    for env in ({}, {name: "x" for name in record.credential_env}, {"CLOUDSDK_CONFIG": "/nope"}):
        assert record.credentials_present(env) == cls.credentials_present(env)


def test_loading_the_plugins_imports_no_sdk() -> None:
    code = (
        "import sys\n"
        "from polybatch.plugins import get_registry\n"
        "infos = get_registry().infos()\n"
        "assert 'openai' in infos and 'anthropic' in infos\n"
        "sdks = ('openai', 'anthropic', 'google.genai', 'mistralai', 'boto3')\n"
        "print(','.join(m for m in sdks if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_the_class_is_imported_on_first_use() -> None:
    record = LazyProvider("fake", "polybatch.testing.fake:FakeProvider")
    info = ProviderInfo("fake", record, plugin="test")
    assert info.provider_class is FakeProvider
    assert info.loaded


def test_a_path_that_is_not_the_provider_is_a_plugin_error() -> None:
    for path in ("polybatch.testing.fake:FakeProvider", "polybatch.nowhere:Nothing"):
        info = ProviderInfo("other", LazyProvider("other", path), plugin="test")
        with pytest.raises(PluginError, match="other"):
            _ = info.provider_class


def test_a_registry_takes_lazy_records_next_to_classes() -> None:
    reg = PluginRegistry(load_entry_points=False)
    reg.add_plugin(
        ProviderPlugin(LazyProvider("fake", "polybatch.testing.fake:FakeProvider")), name="lazy"
    )
    assert not reg.info("fake").loaded or reg.info("fake").provider_class is FakeProvider
    assert reg.provider_class("fake") is FakeProvider
    assert reg.providers() == {"fake": FakeProvider}
