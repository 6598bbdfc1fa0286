"""OpenRouter's decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from openrouter.components.chatusage import (
    ChatUsage,
    ChatUsageCompletionTokensDetails,
    ChatUsagePromptTokensDetails,
)

from polybatch.items import Usage
from polybatch.testing.helpers import chat_completion, output_line
from polybatch_openrouter import codec as openrouter

# -- OpenRouter ---------------------------------------------------------------------------------


def test_openrouter_reads_cached_written_and_reasoning_tokens() -> None:
    raw = ChatUsage(
        prompt_tokens=5_000,
        completion_tokens=500,
        total_tokens=5_500,
        prompt_tokens_details=ChatUsagePromptTokensDetails(
            cached_tokens=1_000, cache_write_tokens=3_000
        ),
        completion_tokens_details=ChatUsageCompletionTokensDetails(reasoning_tokens=120),
    ).model_dump(by_alias=True, exclude_none=True)
    result = openrouter.decode_result(
        output_line(chat_completion(raw)), provider="openrouter", batch_id="b"
    )
    assert result.usage == Usage(
        input_tokens=1_000,
        cached_input_tokens=1_000,
        cache_write_5m_tokens=3_000,
        output_tokens=500,
        reasoning_tokens=120,
    )
