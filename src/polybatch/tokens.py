"""Token counting shared by the cost estimator and the sandbox's synthetic model.

Real providers' tokenizers are not available offline, so estimates count words and punctuation
marks, plus a few framing tokens per message. The sandbox counts the same way, which makes its
usage reproducible and lets tests check that estimates bracket actual costs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
#: framing tokens per message and per prompt, in the spirit of chat formats
MESSAGE_OVERHEAD = 4
PROMPT_OVERHEAD = 3


def count_tokens(text: str) -> int:
    """Words and punctuation marks, one token each."""
    return len(_TOKEN_RE.findall(text))


def prompt_tokens(texts: Iterable[str]) -> int:
    """Input tokens of a conversation given each message's text."""
    return PROMPT_OVERHEAD + sum(count_tokens(t) + MESSAGE_OVERHEAD for t in texts)


def truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` holding at most ``max_tokens`` tokens."""
    end = 0
    for i, m in enumerate(_TOKEN_RE.finditer(text)):
        if i == max_tokens:
            break
        end = m.end()
    return text[:end]


def tokenize(text: str) -> list[str]:
    """The tokens :func:`count_tokens` counts, in order (the sandbox's prompt caching hashes
    prompt prefixes made of them)."""
    return _TOKEN_RE.findall(text)
