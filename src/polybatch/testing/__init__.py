"""Test helpers for polybatch, its plugins and its users' pipelines.

Installed as a pytest plugin (entry point ``pytest11``), so any test suite gets the fixtures of
:mod:`polybatch.testing.fixtures` (``polybatch_home``, ``polybatch_isolation``,
``polybatch_sandbox``, ``polybatch_cli``, ``make_sandbox``, ``sandbox_server``)::

    def test_roundtrip(polybatch_sandbox):
        sandbox = polybatch_sandbox(providers=["openai"])
        provider = sandbox.provider("openai")

the provider conformance suite (:mod:`polybatch.testing.conformance`)::

    from polybatch.testing import ProviderConformance

    class TestMyProviderConformance(ProviderConformance):
        provider_class = MyProvider
        model = "my-model"

and :class:`FakeProvider`, the provider ``fake`` (``fake:echo``): in process, no server, no key,
scriptable outcomes per item (:mod:`polybatch.testing.fake`).

``ISOLATED_ENV`` (the variables a test blanks) is derived from the registered providers'
``credential_env`` and ``sandbox_env`` when it is read: see :mod:`polybatch.testing.env`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .env import SANDBOX_KEY, isolated_env
from .fake import FakeProvider
from .helpers import (
    by_id,
    check_embedding_job,
    make_items,
    run_cli,
    submit_items,
    wait_terminal,
    write_lines,
)

if TYPE_CHECKING:
    from .conformance import CONFORMANCE_KEY, ProviderConformance
    from .fixtures import (
        CliOutcome,
        RealHomeGuard,
        Sandbox,
        isolate,
        make_sandbox,
        polybatch_cli,
        polybatch_home,
        polybatch_isolation,
        polybatch_sandbox,
        sandbox_server,
    )

# pytest is a test-time dependency, and importing it (with the conformance suite) costs a plain
# ``polybatch run`` seconds: the ``fake`` entry point loads this package. So the names that need
# pytest are imported on first access; pytest itself loads the fixtures and hooks from
# ``polybatch.testing.fixtures`` (the ``pytest11`` entry point).
_LAZY = {
    "CONFORMANCE_KEY": "conformance",
    "ProviderConformance": "conformance",
    "CliOutcome": "fixtures",
    "RealHomeGuard": "fixtures",
    "Sandbox": "fixtures",
    "isolate": "fixtures",
    "make_sandbox": "fixtures",
    "polybatch_cli": "fixtures",
    "polybatch_home": "fixtures",
    "polybatch_isolation": "fixtures",
    "polybatch_sandbox": "fixtures",
    "sandbox_server": "fixtures",
}

__all__ = [
    "CONFORMANCE_KEY",
    "ISOLATED_ENV",
    "SANDBOX_KEY",
    "CliOutcome",
    "FakeProvider",
    "ProviderConformance",
    "RealHomeGuard",
    "Sandbox",
    "by_id",
    "check_embedding_job",
    "isolate",
    "isolated_env",
    "make_items",
    "make_sandbox",
    "polybatch_cli",
    "polybatch_home",
    "polybatch_isolation",
    "polybatch_sandbox",
    "run_cli",
    "sandbox_server",
    "submit_items",
    "wait_terminal",
    "write_lines",
]


def __getattr__(name: str) -> Any:
    """``ISOLATED_ENV`` (computed on access, loading the plugins only when a test asks) and the
    names that need pytest (imported on first access)."""
    if name == "ISOLATED_ENV":
        return isolated_env()
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
