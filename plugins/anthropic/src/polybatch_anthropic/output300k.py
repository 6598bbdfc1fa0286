"""Anthropic's batch-only ``output-300k-2026-03-24`` beta: ``max_tokens`` up to 300,000 in Message
Batches for the models that accept it, both sides of the wire.

Source: the shared provider notes (providers-2026-12.md section 2, "New batch-only beta"): Opus
4.6/4.7 and Sonnet 4.6 accept it, and later models as Anthropic adds them (a provider setting,
``output_300k_models``, extends the list). The beta string is in the installed anthropic SDK's
``AnthropicBetaParam``. The adapter sends it as the ``anthropic-beta`` header on the batch create,
only for those models; the sandbox refuses a request above the model's normal ceiling without it,
as the API does. The normal ceilings are Anthropic's model overview figures (UNVERIFIED here);
for other models polybatch knows no ceiling and checks none.
"""

from __future__ import annotations

from collections.abc import Iterable

BETA = "output-300k-2026-03-24"
#: the max_tokens ceiling with the beta
MAX_WITH_BETA = 300_000
#: the models the beta applies to -> their max_tokens ceiling without it
CEILINGS: dict[str, int] = {
    "claude-opus-4-6": 128_000,
    "claude-opus-4-7": 128_000,
    "claude-sonnet-4-6": 64_000,
}


def _family(model: str, extra: Iterable[str] = ()) -> str | None:
    """The beta model ``model`` is (or a dated snapshot of), or None."""
    for name in (*CEILINGS, *extra):
        if model == name or model.startswith(f"{name}-"):
            return name
    return None


def applies(model: str, extra: Iterable[str] = ()) -> bool:
    """Whether ``model`` accepts the beta (``extra``: more model names, from the settings)."""
    return _family(model, extra) is not None


def headers(model: str, extra: Iterable[str] = ()) -> dict[str, str]:
    """The ``anthropic-beta`` header for a batch of ``model`` (empty where the beta does not
    apply)."""
    return {"anthropic-beta": BETA} if applies(model, extra) else {}


def sent_betas(header: str | None) -> frozenset[str]:
    """The betas an ``anthropic-beta`` header names (comma-separated)."""
    return frozenset(b.strip() for b in (header or "").split(",") if b.strip())


def max_tokens_problem(
    model: str, max_tokens: int, betas: Iterable[str], extra: Iterable[str] = ()
) -> str | None:
    """Why ``max_tokens`` is too high for ``model`` with ``betas`` (None when it is not, or the
    ceiling is unknown)."""
    family = _family(model, extra)
    if family is None:
        return None
    with_beta = BETA in set(betas)
    ceiling = MAX_WITH_BETA if with_beta else CEILINGS.get(family, MAX_WITH_BETA)
    if max_tokens <= ceiling:
        return None
    hint = "" if with_beta else f" (up to {MAX_WITH_BETA} with the {BETA} beta in batches)"
    return (
        f"max_tokens: {max_tokens} > {ceiling}, which is the maximum allowed number of output "
        f"tokens for {model}{hint}"
    )
