"""docs/writing-a-provider.md is true: its example plugin loads as a third party's would, passes
the conformance suite, runs through the CLI, and every file of it is what the guide shows.

The example lives in ``examples/plugin-acme`` as its own distribution. It is not installed in the
repository's environment (it would join every test's registry); these tests make it installed for
the time of a test instead, the way pip does: its ``src`` on ``sys.path`` and a ``.dist-info``
directory there, whose ``entry_points.txt`` is written from the example's ``pyproject.toml``. The
registry then finds it through ``importlib.metadata`` entry points, as it finds any plugin.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from polybatch.plugins import ENTRY_POINT_GROUP, get_registry, reset_registry
from polybatch.providers import BatchProvider
from polybatch.testing import CliOutcome

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-acme"
PACKAGE = EXAMPLE / "src" / "polybatch_acme"
DOC = ROOT / "docs" / "writing-a-provider.md"
REQUESTS = ROOT / "examples" / "requests.jsonl"
#: every file of the example the guide must show in full
SHOWN = (
    "pyproject.toml",
    "src/polybatch_acme/__init__.py",
    "src/polybatch_acme/plugin.py",
    "src/polybatch_acme/provider.py",
    "src/polybatch_acme/sandbox.py",
    "src/polybatch_acme/prices.toml",
    "tests/test_acme_conformance.py",
)

if str(EXAMPLE / "src") not in sys.path:
    sys.path.insert(0, str(EXAMPLE / "src"))


def _load_example_test_module() -> object:
    """The example's own conformance test file, under a name that cannot clash."""
    path = EXAMPLE / "tests" / "test_acme_conformance.py"
    spec = importlib.util.spec_from_file_location("polybatch_acme_example_conformance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the very class the guide shows, collected here so that the example runs with the repo's tests
TestAcmeConformance = _load_example_test_module().TestAcmeConformance  # type: ignore[attr-defined]


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    return project


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example installed as pip would (a dist-info on sys.path), with a fresh registry."""
    project = _project()
    entry_points = project["entry-points"]
    assert isinstance(entry_points, dict)
    site = tmp_path / "site-packages"
    dist_info = site / f"polybatch_acme-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = [f"{name} = {target}" for name, target in entry_points[ENTRY_POINT_GROUP].items()]
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "\n".join(lines))
    monkeypatch.syspath_prepend(str(site))
    previous = get_registry()
    reset_registry()  # the next get_registry() reads the entry points again
    try:
        yield
    finally:
        reset_registry(previous)


def test_pyproject_declares_the_polybatch_entry_point() -> None:
    entry_points = _project()["entry-points"]
    assert isinstance(entry_points, dict)
    assert entry_points[ENTRY_POINT_GROUP] == {"acme": "polybatch_acme.plugin:plugin"}


@pytest.mark.usefixtures("installed")
def test_the_entry_point_registers_the_provider_and_its_prices() -> None:
    from polybatch_acme.provider import AcmeProvider

    registry = get_registry()
    cls = registry.provider_class("acme")
    assert cls is AcmeProvider and issubclass(cls, BatchProvider)
    assert registry.info("acme").distribution == "polybatch-acme"
    assert PACKAGE / "prices.toml" in registry.price_files()


@pytest.mark.usefixtures("installed")
def test_polybatch_run_on_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, polybatch_cli: Callable[..., CliOutcome]
) -> None:
    """The guide's last step: ``polybatch run ... --model acme:acme-1 --sandbox``."""
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    out_path = tmp_path / "results.jsonl"
    args = ["run", str(REQUESTS), "--model", "acme:acme-1", "--sandbox", "--no-progress"]
    code, out, err = astuple(polybatch_cli(*args, "-o", str(out_path)))
    assert code == 0, err
    assert "18 succeeded" in out, out
    results = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(results) == 18 and {r["status"] for r in results} == {"succeeded"}
    assert {r["provider"] for r in results} == {"acme"}
    structured = next(r for r in results if r["custom_id"] == "json-01")
    assert set(json.loads(structured["text"])) >= {"title", "keywords"}
    # the cost table: a row priced from the example's prices.toml, and the total
    row = next(line for line in out.splitlines() if line.startswith("| acme "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["acme", "acme-1", "18", "0"], row
    assert float(cells[-3]) > 0, "the batch cost is priced"
    assert any(line.startswith("| TOTAL") for line in out.splitlines()), out


# -- the guide's listings are the example's files -----------------------------------------------
def _listings() -> dict[str, list[str]]:
    """The guide's code listings by the file each one is introduced as (``<!-- file: PATH -->``)."""
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(r"<!-- file: (\S+) -->\s*```[a-z]*\n(.*?)```", re.DOTALL)
    found: dict[str, list[str]] = {}
    for match in pattern.finditer(text):
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_guide_shows_only_files_of_the_example() -> None:
    assert set(_listings()) <= set(SHOWN), sorted(set(_listings()) - set(SHOWN))
    shipped = {
        str(p.relative_to(EXAMPLE))
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml") and "__pycache__" not in p.parts
    }
    assert shipped == set(SHOWN), "SHOWN lists every file of the example"


@pytest.mark.parametrize("path", SHOWN)
def test_each_listing_is_its_file(path: str) -> None:
    """A file's listings, in order, are the whole file, line for line (blank lines aside):
    the guide cannot drift from the code, nor leave any of it out."""
    listings = _listings()
    assert path in listings, f"the guide does not show {path}"
    shown = _code_lines("".join(listings[path]))
    assert shown == _code_lines((EXAMPLE / path).read_text(encoding="utf-8"))


def test_the_guide_links_the_hook_reference() -> None:
    assert "(plugin-hooks.md)" in DOC.read_text(encoding="utf-8")
