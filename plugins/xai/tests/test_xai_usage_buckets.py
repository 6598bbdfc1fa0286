"""xAI's decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from typing import Any

from polybatch.items import Usage
from polybatch.testing.helpers import chat_completion
from polybatch_xai import codec as xai

# -- xAI ----------------------------------------------------------------------------------------


def _xai_row(usage: dict[str, Any]) -> dict[str, Any]:
    body = chat_completion(usage, "grok-4")
    return {"batch_request_id": "a", "batch_result": {"response": {xai.CHAT_KEY: body}}}


def test_xai_reasoning_tokens_are_billed_as_output() -> None:
    # xAI's documented reply: 32 prompt (6 cached), 9 completion, 94 reasoning, total 135 =
    # 32 + 9 + 94: reasoning is outside completion_tokens and billed as output (103 tokens)
    usage = {
        "prompt_tokens": 32,
        "completion_tokens": 9,
        "total_tokens": 135,
        "prompt_tokens_details": {
            "text_tokens": 32,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 6,
        },
        "completion_tokens_details": {"reasoning_tokens": 94, "audio_tokens": 0},
    }
    result = xai.decode_result(_xai_row(usage), provider="xai", batch_id="b")
    assert result.usage == Usage(
        input_tokens=26, cached_input_tokens=6, output_tokens=103, reasoning_tokens=94
    )


def test_xai_reasoning_already_inside_the_total_is_not_counted_twice() -> None:
    # a total of prompt + completion says the reasoning is inside completion_tokens
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 50,
        "total_tokens": 60,
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    result = xai.decode_result(_xai_row(usage), provider="xai", batch_id="b")
    assert (result.usage.output_tokens, result.usage.reasoning_tokens) == (50, 30)


def test_xai_reasoning_without_a_total_follows_xais_rule() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    result = xai.decode_result(_xai_row(usage), provider="xai", batch_id="b")
    assert result.usage.output_tokens == 35
