"""Prompt caching for the synthetic model: repeated prompt prefixes become cache reads.

The sandbox's providers report cached input the way their APIs do, so that the cached and
cache-write paths of decoding, pricing and estimating run over HTTP:

- :meth:`PromptCache.automatic`, OpenAI-style automatic prefix caching (also used for Gemini's
  implicit caching): a prompt of at least :data:`MIN_CACHEABLE_TOKENS` tokens is cached in
  :data:`STEP`-token increments of its prefix; a later prompt repeating a cached prefix reads the
  longest one. Models that bill cache writes report the newly cached part as written.
- :meth:`PromptCache.marked`, Anthropic-style ``cache_control`` breakpoints: the prompt up to a
  marked block is written on first sight (to the 5-minute or 1-hour cache, as its ``ttl`` says,
  each segment between two breakpoints at its own breakpoint's TTL) and read afterwards.

Prompts are token lists as :mod:`polybatch.tokens` counts them (framing tokens included), so
the cached counts add up with the sandbox's ``prompt_tokens``. The state is a set of prefix
digests per cache (one per :class:`~polybatch.sandbox.model.SyntheticModel`, so per sandbox
engine), scoped by provider namespace and model; entries never expire (tests control order, not
time), which keeps every run deterministic. Short prompts never touch the cache, so their
figures are unchanged.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..tokens import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, tokenize

#: the shortest prompt (prefix) any cache holds: OpenAI's and Anthropic's documented minimum
MIN_CACHEABLE_TOKENS = 1024
#: OpenAI's cache-hit granularity: cached tokens come in 128-token increments
STEP = 128
#: Anthropic's limit on cache breakpoints per request
MAX_BREAKPOINTS = 4


@dataclass(frozen=True)
class Cached:
    """The cached part of one prompt: tokens read, and tokens written per TTL."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        """Tokens written to the cache, whatever the TTL."""
        return self.write_5m + self.write_1h


def prompt_token_list(messages: Iterable[tuple[str, str]]) -> list[str]:
    """The tokens of a conversation, framing included, in order: as many as
    :func:`polybatch.tokens.prompt_tokens` counts."""
    tokens = ["<prompt>"] * PROMPT_OVERHEAD
    for role, text in messages:
        tokens += [f"<{role}>"] * MESSAGE_OVERHEAD
        tokens += tokenize(text)
    return tokens


class PromptCache:
    """Prefix digests seen so far (thread-safe: the sandbox serves requests concurrently)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget everything cached."""
        with self._lock:
            self._seen.clear()

    @staticmethod
    def _digests(
        scope: Sequence[str], tokens: Sequence[str], lengths: Iterable[int]
    ) -> dict[int, bytes]:
        """The digest of each prefix of ``tokens`` of the given (ascending) lengths."""
        h = hashlib.sha256("\x1f".join(scope).encode() + b"\x1e")
        out: dict[int, bytes] = {}
        at = 0
        for length in lengths:
            for token in tokens[at:length]:
                h.update(token.encode() + b"\x1f")
            at = length
            out[length] = h.copy().digest()
        return out

    def automatic(
        self,
        scope: Sequence[str],
        messages: Iterable[tuple[str, str]],
        *,
        writes: bool = False,
        length: int | None = None,
        minimum: int = MIN_CACHEABLE_TOKENS,
        step: int = STEP,
    ) -> Cached:
        """Automatic prefix caching of one prompt: the longest cached prefix is read, the
        prompt's own prefixes are cached; with ``writes`` the newly cached tokens are reported
        as 5-minute-bucket writes (the provider's default retention). ``length``, the prompt's
        token count when the caller has it, spares short prompts a second tokenization."""
        if length is not None and length < minimum:
            return Cached()
        tokens = prompt_token_list(messages)
        if len(tokens) < minimum:
            return Cached()
        digests = self._digests(scope, tokens, range(minimum, len(tokens) + 1, step))
        with self._lock:
            read = max((n for n, d in digests.items() if d in self._seen), default=0)
            self._seen.update(digests.values())
        longest = max(digests)
        return Cached(read=read, write_5m=longest - read if writes else 0)

    def marked(
        self,
        scope: Sequence[str],
        tokens: Sequence[str],
        breakpoints: Sequence[tuple[int, str]],
        *,
        minimum: int = MIN_CACHEABLE_TOKENS,
    ) -> Cached:
        """Explicit breakpoints (``(prefix length, ttl)``, ttl ``"5m"`` or ``"1h"``): the
        longest marked prefix seen before is read; each later marked prefix of at least
        ``minimum`` tokens is written, the tokens since the previous cached point at its TTL."""
        points: dict[int, str] = {}
        for length, ttl in breakpoints[:MAX_BREAKPOINTS]:
            if minimum <= length <= len(tokens):
                points[length] = "1h" if ttl == "1h" else "5m"
        if not points:
            return Cached()
        lengths = sorted(points)
        digests = self._digests(scope, tokens, lengths)
        with self._lock:
            read = max((n for n in lengths if digests[n] in self._seen), default=0)
            self._seen.update(digests.values())
        written = {"5m": 0, "1h": 0}
        at = read
        for length in lengths:
            if length > at:
                written[points[length]] += length - at
                at = length
        return Cached(read=read, write_5m=written["5m"], write_1h=written["1h"])
