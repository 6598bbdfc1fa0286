"""The pytest fixtures polybatch's pytest plugin (``pytest11`` entry point) gives every test suite.

- ``polybatch_home``: a fresh ``POLYBATCH_HOME`` (ledger and job files), with ``HOME`` and the
  XDG directories moved into the test's temporary directory (so platformdirs cannot reach the
  user's real ones) and every provider credential variable blanked (:func:`isolated_env`).
- ``polybatch_isolation``: the same, under the name a conftest makes autouse (see below).
- ``polybatch_sandbox``: ``polybatch_sandbox(providers=["openai"], rate=5)`` starts an in-process
  sandbox serving the named registered providers and returns a :class:`Sandbox` that builds
  ready providers pointed at it; every sandbox is stopped after the test.
- ``make_sandbox`` / ``sandbox_server``: the older spellings (a bare :class:`SandboxServer`).
- ``polybatch_cli``: ``polybatch_cli("run", "in.jsonl", "--model", "fake:echo")`` runs the real
  CLI entry point in this process and returns a :class:`CliOutcome`.

Two ini options (``[tool.pytest.ini_options]``), both off unless a suite turns them on, since a
plugin installed into every environment must not move ``HOME`` under tests that do not expect it:

- ``polybatch_isolation = true``: every test gets ``polybatch_isolation`` automatically;
- ``polybatch_home_guard = true``: :class:`RealHomeGuard` snapshots the real polybatch home at
  session start and fails the run (exit status 1) if anything in it changed by the end.

polybatch's own ``pyproject.toml`` turns both on, so core and plugin tests cannot forget it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..providers import BatchProvider
from ..sandbox import SandboxEngine, SandboxServer
from .env import SANDBOX_KEY, isolated_env

__all__ = [
    "CliOutcome",
    "RealHomeGuard",
    "Sandbox",
    "isolate",
    "make_sandbox",
    "polybatch_cli",
    "polybatch_home",
    "polybatch_isolation",
    "polybatch_sandbox",
    "sandbox_server",
]

#: the variables platformdirs reads to find a user's data and config directories
_DIR_ENV = ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


def isolate(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point POLYBATCH_HOME, HOME and the XDG dirs under ``root``; blank provider variables.

    Returns the POLYBATCH_HOME (not created: polybatch creates it on first use).
    """
    home = root / "polybatch-home"
    for name in isolated_env():
        monkeypatch.delenv(name, raising=False)
    user = root / "user-home"
    monkeypatch.setenv("HOME", str(user))
    for name in _DIR_ENV[1:]:
        monkeypatch.setenv(name, str(user / name.lower()))
    monkeypatch.setenv("POLYBATCH_HOME", str(home))
    return home


@pytest.fixture
def polybatch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh POLYBATCH_HOME in the test's temporary directory (also the working directory)."""
    home = isolate(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def polybatch_isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What ``polybatch_home`` isolates, without changing the working directory: the fixture
    the ``polybatch_isolation`` ini option gives every test."""
    return isolate(tmp_path, monkeypatch)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ini options that turn isolation and the real-home guard on."""
    parser.addini(
        "polybatch_isolation",
        "give every test an isolated POLYBATCH_HOME, HOME and XDG dirs, credentials blanked",
        type="bool",
        default=False,
    )
    parser.addini(
        "polybatch_home_guard",
        "fail the run if anything was written to the real polybatch home",
        type="bool",
        default=False,
    )


@pytest.fixture(autouse=True)
def _polybatch_auto_isolation(request: pytest.FixtureRequest) -> None:
    """``polybatch_isolation`` for every test, when the ini option asks for it."""
    if request.config.getini("polybatch_isolation"):
        request.getfixturevalue("polybatch_isolation")


_GUARD = pytest.StashKey["RealHomeGuard"]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Snapshot the real home (``polybatch_home_guard``)."""
    if session.config.getini("polybatch_home_guard"):
        session.config.stash[_GUARD] = RealHomeGuard.snapshot()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test wrote into the real home."""
    guard = session.config.stash.get(_GUARD, None)
    if guard is None:
        return
    changes = guard.changes()
    if not changes:
        return
    shown = ", ".join(changes[:10]) + (" ..." if len(changes) > 10 else "")
    message = f"polybatch: tests wrote into the real polybatch home {guard.root}: {shown}"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        sys.stderr.write(message + "\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass
class RealHomeGuard:
    """Remembers the real polybatch home's listing and mtimes; says what changed since.

    ``RealHomeGuard.snapshot()`` at session start, ``guard.changes()`` at session end: a non-empty
    list means a test wrote into the user's real ledger or job files.
    """

    root: Path
    before: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def real_home(environ: Mapping[str, str] | None = None) -> Path:
        """The home polybatch would use outside the tests (``POLYBATCH_HOME`` or platformdirs)."""
        environ = os.environ if environ is None else environ
        if environ.get("POLYBATCH_HOME"):
            return Path(environ["POLYBATCH_HOME"])
        import platformdirs

        return Path(platformdirs.user_data_dir("polybatch"))

    @classmethod
    def snapshot(cls, root: Path | None = None) -> RealHomeGuard:
        guard = cls(root or cls.real_home())
        guard.before = guard._listing()
        return guard

    def _listing(self) -> dict[str, int]:
        if not self.root.exists():
            return {}
        out = {".": self.root.stat().st_mtime_ns}
        for path in self.root.rglob("*"):
            try:
                out[str(path.relative_to(self.root))] = path.stat().st_mtime_ns
            except OSError:
                continue
        return out

    def changes(self) -> list[str]:
        """Paths (relative to the home) created, changed or removed since the snapshot."""
        after = self._listing()
        return sorted(k for k in {*self.before, *after} if self.before.get(k) != after.get(k))


@dataclass
class Sandbox:
    """A running sandbox for some registered providers, and ready providers pointed at it."""

    server: SandboxServer
    providers: tuple[str, ...]
    engine_options: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> SandboxEngine:
        return self.server.engine

    @property
    def url(self) -> str:
        return self.server.url

    def settings(self, name: str, api_key: str | None = None) -> dict[str, Any]:
        """Constructor arguments pointing provider ``name`` at this sandbox."""
        from ..plugins import get_registry

        cls = get_registry().provider_class(name)
        return dict(cls.sandbox_settings(self.url, api_key or self.engine.api_key or SANDBOX_KEY))

    def provider(self, name: str, *, api_key: str | None = None, **settings: Any) -> BatchProvider:
        """Provider ``name`` from the registry, pointed here; ``settings`` add to its own."""
        from ..plugins import get_registry

        cls = get_registry().provider_class(name)
        kwargs = self.settings(name, api_key)
        merged = {**dict(kwargs.pop("settings", None) or {}), **settings}
        return cls(**kwargs, settings=merged)


@pytest.fixture
def polybatch_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory: ``polybatch_sandbox(providers=["openai"], **engine_options)`` -> a Sandbox.

    ``providers=None`` serves every registered provider. The engine requires
    :data:`SANDBOX_KEY` unless ``api_key`` is among the options. All are stopped after the test.
    """
    started: list[SandboxServer] = []

    def start(providers: Iterable[str] | None = None, **engine_options: Any) -> Sandbox:
        from ..plugins import get_registry

        engine_options.setdefault("api_key", SANDBOX_KEY)
        names = tuple(providers) if providers is not None else None
        classes = None
        if names is not None:
            registry = get_registry()
            classes = {n: registry.provider_class(n) for n in names}
        server = SandboxServer(SandboxEngine(**engine_options), providers=classes).start()
        started.append(server)
        return Sandbox(server, names or tuple(get_registry().providers()), engine_options)

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def make_sandbox(polybatch_sandbox: Callable[..., Sandbox]) -> Callable[..., SandboxServer]:
    """A factory: ``make_sandbox(rate=5, ...)`` starts a sandbox server for every provider."""

    def factory(**engine_options: Any) -> SandboxServer:
        return polybatch_sandbox(**engine_options).server

    return factory


@pytest.fixture
def sandbox_server(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A sandbox server on 127.0.0.1 (OS-chosen port) that processes batches instantly."""
    return make_sandbox()


@dataclass(frozen=True)
class CliOutcome:
    """What one in-process CLI run left: exit code, stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def polybatch_cli(
    polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliOutcome]:
    """``polybatch_cli("run", "in.jsonl", "--model", "fake:echo", env={...})``: the real entry
    point (``polybatch.cli:main``, its error handling included) in this process, isolated."""
    from click.testing import CliRunner

    from ..cli import main

    def run(
        *args: str, env: Mapping[str, str] | None = None, input: str | None = None
    ) -> CliOutcome:
        monkeypatch.setattr(sys, "argv", ["polybatch", *args])
        code = 0
        with CliRunner().isolation(input=input, env=dict(env or {})) as (out, err, _):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return CliOutcome(code, out.getvalue().decode(), err.getvalue().decode())

    return run
