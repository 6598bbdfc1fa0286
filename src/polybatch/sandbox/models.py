"""Which models each emulated provider serves: the sandbox refuses the others, as the real
services do (issue #16 item 5).

A provider's model list is the models its bundled price rows name (their ``name`` and
``aliases``, read from the price files the plugins register) plus the models its sandbox routes
declare (:attr:`polybatch.sandbox.api.ProviderApi.declared_models`) and those an engine is given
(``SandboxEngine(models={"openai": [...]})``). A name with a date suffix the provider appends
(``gpt-4o-mini-2024-07-18``) is known when the name without it is. ``strict_models=False`` lets
any model through, for tests that need made-up names; a provider with no list at all (an
OpenAI-compatible preset without price rows) takes any name too.

Each provider's routes answer an unknown model in their vendor's own shape; this module only
decides which names are known (and what a request's kind is: chat lines sent to an embeddings
model, or the reverse, are refused too).
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..providers import strip_date_suffix

__all__ = ["ModelCatalog", "bundled_models", "is_embedding_model", "strip_date_suffix"]

#: how embedding models are named (``text-embedding-3-small``, ``gemini-embedding-001``,
#: ``mistral-embed``, ``amazon.titan-embed-text-v2:0``)
_EMBEDDING = re.compile(r"embed", re.IGNORECASE)


def is_embedding_model(model: str) -> bool:
    """Whether ``model`` is an embeddings model (by its name, as the vendors name them)."""
    return bool(_EMBEDDING.search(model))


def _price_file_models(path: Path) -> dict[str, set[str]]:
    """provider -> the model names (and aliases) a price file's ``[[model]]`` entries give."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    out: dict[str, set[str]] = {}
    for entry in data.get("model", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("provider"), str):
            continue
        names = out.setdefault(entry["provider"], set())
        if isinstance(entry.get("name"), str):
            names.add(entry["name"])
        names.update(a for a in entry.get("aliases", []) if isinstance(a, str))
    return out


@functools.cache
def _bundled(paths: tuple[Path, ...]) -> Mapping[str, frozenset[str]]:
    merged: dict[str, set[str]] = {}
    for path in paths:
        for provider, names in _price_file_models(path).items():
            merged.setdefault(provider, set()).update(names)
    return {provider: frozenset(names) for provider, names in merged.items()}


def bundled_models(provider: str) -> frozenset[str]:
    """The models the registered plugins' price files name for ``provider`` (read once per
    set of files: a test that swaps the plugin registry gets its own)."""
    from ..plugins import get_registry

    paths = tuple(Path(p) for p in get_registry().price_files())
    return _bundled(paths).get(provider, frozenset())


class ModelCatalog:
    """The models an engine's providers serve (see the module docstring).

    ``strict=False`` knows every name. ``extra`` adds models per provider name.
    """

    def __init__(self, *, strict: bool = True, extra: Mapping[str, Iterable[str]] | None = None):
        self.strict = strict
        self.extra = {provider: frozenset(names) for provider, names in (extra or {}).items()}

    def models(self, provider: str, declared: Iterable[str] = ()) -> frozenset[str]:
        """Every model ``provider`` serves: price rows, ``declared`` by its routes, extras."""
        return (
            bundled_models(provider) | frozenset(declared) | self.extra.get(provider, frozenset())
        )

    def knows(self, provider: str, model: str, declared: Iterable[str] = ()) -> bool:
        """Whether ``provider`` serves ``model`` (always, when not strict, and for a provider
        whose model list is unknown: no price rows, nothing declared)."""
        if not self.strict:
            return True
        known = self.models(provider, declared)
        return not known or model in known or strip_date_suffix(model) in known
