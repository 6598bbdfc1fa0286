"""A model that is neither priced nor in its provider's model list: most likely a typo.

Before submitting (and in ``polybatch estimate``) such a model is named in one line with the
nearest known name, ``model 'gpt-4o-mni' is not in the price registry nor in openai's model list
(did you mean gpt-4o-mini?)``, instead of the plain "no price" message: the sandbox refuses it
as the real service would (issue #16 item 5), so a rehearsal does not hide the typo.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..errors import PriceNotFoundError
from ..providers import strip_date_suffix
from .registry import PriceRegistry

__all__ = ["UnknownModelError", "unknown_model"]


class UnknownModelError(PriceNotFoundError):
    """The model has no price row and its provider does not list it (``known_models``)."""


def unknown_model(
    registry: PriceRegistry, provider: str, model: str, known_models: Iterable[str] = ()
) -> UnknownModelError | None:
    """The error naming ``model`` as unknown, with the closest known name, or None when the
    registry prices it (under any alias) or the provider lists it."""
    listed = set(known_models)
    if registry.resolve_model(provider, model) is not None:
        return None
    if model in listed or strip_date_suffix(model) in listed:
        return None
    names = sorted(listed | {r.model for r in registry.rows() if r.provider == provider})
    near = difflib.get_close_matches(model, names, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return UnknownModelError(
        f"model {model!r} is not in the price registry nor in {provider}'s model list{hint}"
    )
