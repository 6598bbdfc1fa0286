"""The OpenAI-format (OpenAI, Azure, OpenAI-compatible)'s decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails

from polybatch.items import Usage
from polybatch.testing.helpers import chat_completion, output_line
from polybatch_openai import codec as openai

# -- OpenAI, Azure, OpenAI-compatible (one decoder) -------------------------------------------


def test_openai_cache_writes_are_their_own_bucket() -> None:
    # gpt-6-sol: 12,000 prompt tokens = 1,024 read + 10,000 written + 976 plain; 300 out of
    # which 200 reasoning (OpenAI counts reasoning inside completion_tokens)
    raw = CompletionUsage(
        prompt_tokens=12_000,
        completion_tokens=300,
        total_tokens=12_300,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=1_024, cache_write_tokens=10_000, audio_tokens=0
        ),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=200),
    ).model_dump(exclude_none=True)
    result = openai.decode_result(output_line(chat_completion(raw, "gpt-6-sol")), provider="openai")
    assert result.usage == Usage(
        input_tokens=976,
        cached_input_tokens=1_024,
        cache_write_5m_tokens=10_000,
        output_tokens=300,
        reasoning_tokens=200,
    )
    assert result.usage.total_input_tokens == 12_000


def test_openai_usage_without_details_is_all_plain_input() -> None:
    raw = CompletionUsage(prompt_tokens=50, completion_tokens=7, total_tokens=57).model_dump()
    assert openai.usage_from_body(raw) == Usage(input_tokens=50, output_tokens=7)


def test_openai_buckets_never_exceed_the_prompt() -> None:
    # a cache-write count larger than what the read leaves is cut to the prompt's size
    raw = CompletionUsage(
        prompt_tokens=2_000,
        completion_tokens=1,
        total_tokens=2_001,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1_536, cache_write_tokens=2_000),
    ).model_dump(exclude_none=True)
    usage = openai.usage_from_body(raw)
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_5m_tokens) == (
        0,
        1_536,
        464,
    )


def test_openai_style_total_keeps_reasoning_inside() -> None:
    # the shared decoder only adds reasoning when the total says it is outside
    raw = CompletionUsage(
        prompt_tokens=10,
        completion_tokens=50,
        total_tokens=60,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=30),
    ).model_dump(exclude_none=True)
    assert openai.usage_from_body(raw).output_tokens == 50
