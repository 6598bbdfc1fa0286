"""The Anthropic sandbox's cache breakpoints (issue #17 item 7): ``marked_prompt`` counts the
tokens up to each ``cache_control`` marker as the synthetic model bills them (the end-to-end runs
over HTTP are in tests/test_sandbox_caching.py)."""

from __future__ import annotations

from typing import Any

from polybatch.tokens import prompt_tokens
from polybatch_anthropic.codec import conversation
from polybatch_anthropic.sandbox import marked_prompt


def test_anthropic_marked_prompt_counts_what_the_sandbox_bills() -> None:
    params: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 1,
        "system": [
            {"type": "text", "text": "Be brief, please.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": "Hello there!"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Hi."},
                    {"type": "text", "text": "How can I help?"},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Tell me", "cache_control": {"ttl": "1h"}},
                ],
            },
        ],
    }
    tokens, points = marked_prompt(params)
    assert len(tokens) == prompt_tokens(text for _, text in conversation(params))
    # the system block ends after 3 + 4 + 5 tokens ("Be", "brief", ",", "please", ".")
    assert points == [(3 + 4 + 5, "5m"), (len(tokens), "1h")]
    # no marker anywhere: nothing to tokenize
    assert marked_prompt({**params, "system": "plain", "messages": params["messages"][:1]}) == (
        [],
        [],
    )
