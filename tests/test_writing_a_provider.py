"""docs/writing-a-provider.md is true: its example plugin loads, registers, and passes the suite.

The example lives in ``examples/plugin-echo`` as its own distribution. These tests use it without
installing it (its ``src`` goes on ``sys.path``): through the same ``PluginRegistry.add_plugin``
that entry-point loading calls, with the entry point read from its ``pyproject.toml``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

from polybatch.plugins import ENTRY_POINT_GROUP, PluginRegistry
from polybatch.providers import BatchProvider

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-echo"
DOC = ROOT / "docs" / "writing-a-provider.md"

if str(EXAMPLE / "src") not in sys.path:
    sys.path.insert(0, str(EXAMPLE / "src"))


def _load_example_test_module() -> object:
    """The example's own conformance test file, under a name that cannot clash."""
    path = EXAMPLE / "tests" / "test_echo_conformance.py"
    spec = importlib.util.spec_from_file_location("polybatch_echo_example_conformance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the very class the doc shows, collected here so the example runs with the repo's tests
TestEchoConformance = _load_example_test_module().TestEchoConformance  # type: ignore[attr-defined]


def _entry_point() -> tuple[str, str]:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    ((name, target),) = project["entry-points"][ENTRY_POINT_GROUP].items()
    return name, target


def test_pyproject_declares_the_polybatch_entry_point() -> None:
    name, target = _entry_point()
    assert name == "echo"
    module = importlib.import_module(target)
    assert hasattr(module, "register_providers")


def test_the_entry_point_registers_the_provider() -> None:
    name, target = _entry_point()
    registry = PluginRegistry(load_entry_points=False)
    registry.add_plugin(importlib.import_module(target), name=name, dist="polybatch-echo")
    cls = registry.provider_class("echo")
    assert issubclass(cls, BatchProvider)
    assert registry.info("echo").distribution == "polybatch-echo"
    from polybatch_echo import EchoProvider

    assert cls is EchoProvider


def _doc_blocks() -> list[tuple[str, str]]:
    """(path, code) for every code block the doc introduces with a ``<!-- file: PATH -->`` line."""
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(r"<!-- file: (\S+) -->\s*```[a-z]*\n(.*?)```", re.DOTALL)
    return [(m.group(1), m.group(2)) for m in pattern.finditer(text)]


def test_the_doc_quotes_files_that_exist() -> None:
    blocks = _doc_blocks()
    quoted = {path for path, _ in blocks}
    # the walk-through covers every step: entry point, hookimpl, provider, sandbox, the suite
    for must in (
        "pyproject.toml",
        "src/polybatch_echo/plugin.py",
        "src/polybatch_echo/provider.py",
        "src/polybatch_echo/sandbox.py",
        "tests/test_echo_conformance.py",
    ):
        assert must in quoted, f"the doc does not show {must}"


@pytest.mark.parametrize(
    "path, code", _doc_blocks(), ids=[f"{i}:{p}" for i, (p, _) in enumerate(_doc_blocks())]
)
def test_every_doc_snippet_is_in_the_example(path: str, code: str) -> None:
    """Each snippet appears verbatim in the file it names: the doc cannot drift from the code."""
    source = (EXAMPLE / path).read_text(encoding="utf-8")
    assert code.strip() in source, f"the doc's snippet of {path} is not in that file"
