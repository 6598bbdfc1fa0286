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

from importlib.util import find_spec

from .env import SANDBOX_KEY, isolated_env
from .fake import FakeProvider
from .helpers import by_id, make_items, submit_items, wait_terminal, write_lines

# pytest is a test-time dependency: without it, the fake and the helpers still import (the
# ``fake`` entry point loads this package in a plain ``polybatch run``)
if find_spec("pytest") is not None:
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

    # the pytest hooks and the autouse fixture: pytest finds them on this module
    from .fixtures import _polybatch_auto_isolation as _polybatch_auto_isolation
    from .fixtures import pytest_addoption as pytest_addoption
    from .fixtures import pytest_sessionfinish as pytest_sessionfinish
    from .fixtures import pytest_sessionstart as pytest_sessionstart

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
    "isolate",
    "isolated_env",
    "make_items",
    "make_sandbox",
    "polybatch_cli",
    "polybatch_home",
    "polybatch_isolation",
    "polybatch_sandbox",
    "sandbox_server",
    "submit_items",
    "wait_terminal",
    "write_lines",
]


def __getattr__(name: str) -> tuple[str, ...]:
    """``ISOLATED_ENV``: computed on access (loading the plugins only when a test asks)."""
    if name == "ISOLATED_ENV":
        return isolated_env()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
