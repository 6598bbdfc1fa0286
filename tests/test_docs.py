"""Every plugin hook is documented: a docstring on its spec and a section in docs/plugin-hooks.md.

As datasette's ``tests/test_docs.py`` does for its hooks: adding a hook spec without documenting
it fails here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polybatch import hookspecs

DOC = Path(__file__).parent.parent / "docs" / "plugin-hooks.md"


def _hookspecs() -> list[tuple[str, Callable[..., Any]]]:
    marker = f"{hookspecs.PROJECT}_spec"
    return [(n, f) for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, marker)]


def _sections() -> dict[str, str]:
    """The doc's ``## `hook(args)` `` sections by hook name, with their text."""
    parts = re.split(r"^## `(\w+)\(([^)]*)\)`\s*$", DOC.read_text(encoding="utf-8"), flags=re.M)
    return {parts[i]: parts[i + 2] for i in range(1, len(parts), 3)}


def test_hookspecs_are_found() -> None:
    assert {name for name, _ in _hookspecs()} >= {"register_providers", "register_prices"}


@pytest.mark.parametrize(("name", "spec"), _hookspecs())
def test_every_hookspec_has_a_docstring(name: str, spec: Callable[..., Any]) -> None:
    doc = inspect.getdoc(spec) or ""
    assert len(doc.split()) >= 5, f"hookspec {name} needs a docstring"


@pytest.mark.parametrize(("name", "spec"), _hookspecs())
def test_every_hookspec_is_documented(name: str, spec: Callable[..., Any]) -> None:
    sections = _sections()
    assert name in sections, f"docs/plugin-hooks.md has no '## `{name}(...)`' section"
    prose = re.sub(r"```.*?```", "", sections[name], flags=re.S)
    assert len(prose.split()) >= 10, f"docs/plugin-hooks.md: describe {name}, not only show it"


def test_documented_arguments_match_the_specs() -> None:
    parts = re.findall(r"^## `(\w+)\(([^)]*)\)`", DOC.read_text(encoding="utf-8"), flags=re.M)
    specs = dict(_hookspecs())
    for name, args in parts:
        assert name in specs, f"docs/plugin-hooks.md documents {name}, which is no hookspec"
        params = list(inspect.signature(specs[name]).parameters)
        assert [a.strip() for a in args.split(",") if a.strip()] == params, name
