"""Which environment variables a test must not inherit: derived from the registered providers.

Nothing here is a hand-kept list of vendors: every registered provider names its credential
variables (``credential_env``) and the variables that point a client at a sandbox
(``sandbox_env``, base URLs among them). A test blanks those, and every variable that shares a
vendor prefix with them (``OPENAI_`` from ``OPENAI_API_KEY``: the SDKs read ``OPENAI_ORG_ID``,
``OPENAI_API_VERSION`` ... by themselves), plus polybatch's own selection variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from ..plugins import PluginRegistry

#: the key the test fixtures' sandboxes require
SANDBOX_KEY = "sk-polybatch-test-0123456789"
#: polybatch's own variables that would pick a user's config, profile or model
POLYBATCH_ENV = ("POLYBATCH_CONFIG", "POLYBATCH_PROFILE", "POLYBATCH_MODEL")


@cache
def provider_env() -> tuple[str, ...]:
    """Credential and sandbox-pointing variables of every provider an entry point registers.

    Read from a registry of its own (the process-wide one may hold a test's stand-ins, or
    providers a user's config defines); computed once per process.
    """
    names: set[str] = set()
    for cls in PluginRegistry().providers().values():
        names.update(cls.credential_env)
        try:
            names.update(cls.sandbox_env("http://127.0.0.1:9", SANDBOX_KEY))
        except Exception:  # a provider's sandbox hook is not this module's business
            continue
    return tuple(sorted(names))


def vendor_prefixes(names: tuple[str, ...]) -> tuple[str, ...]:
    """``OPENAI_`` for ``OPENAI_API_KEY``: the first word of each variable, with its ``_``."""
    return tuple(sorted({n.split("_", 1)[0] + "_" for n in names if "_" in n}))


def isolated_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every variable a test should blank, given the environment it would inherit."""
    environ = os.environ if environ is None else environ
    declared = provider_env()
    prefixes = vendor_prefixes(declared)
    ambient = {n for n in environ if n.startswith(prefixes)}
    return tuple(sorted({*POLYBATCH_ENV, *declared, *ambient}))
