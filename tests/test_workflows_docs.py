"""docs/workflows.md runs as written: every Python block, in order, in one module namespace, against
the sandbox (the provider's own base-URL and key variables point the real SDK at it)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from polybatch.plugins import get_registry
from polybatch.sandbox import SandboxServer

DOC = Path(__file__).parent.parent / "docs" / "workflows.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_page_has_its_examples() -> None:
    code = "\n".join(blocks())
    for name in ("prompt=", "response_model=", "mixed.jsonl", "to_openai", "category", "batches()"):
        assert name in code, name


def test_workflows_page_runs(
    sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = get_registry().provider_class("openai")
    for key, value in cls.sandbox_env(
        sandbox_server.url, sandbox_server.engine.api_key or ""
    ).items():
        monkeypatch.setenv(key, value)
    # a module of its own, so that the page's classes are importable by name (module:Class), as
    # they are in a user's script or package
    module = types.ModuleType("workflows_doc_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for n, code in enumerate(blocks(), start=1):
        exec(compile(code, f"{DOC.name} block {n}", "exec"), module.__dict__)
