"""Anthropic (and Claude, Converse and Nova on Bedrock)'s decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import CacheCreation, OutputTokensDetails
from anthropic.types import Usage as AnthropicUsage

from polybatch.items import Usage
from polybatch_anthropic import codec as anthropic
from polybatch_bedrock import codec as bedrock

# -- Anthropic (and Claude on Bedrock) ---------------------------------------------------------


def _anthropic_usage() -> dict[str, Any]:
    return AnthropicUsage(
        input_tokens=50,
        output_tokens=400,
        cache_creation_input_tokens=3_000,
        cache_read_input_tokens=20_000,
        cache_creation=CacheCreation(
            ephemeral_5m_input_tokens=1_000, ephemeral_1h_input_tokens=2_000
        ),
        output_tokens_details=OutputTokensDetails(thinking_tokens=250),
        service_tier="batch",
    ).model_dump(exclude_none=True)


ANTHROPIC_EXPECTED = Usage(
    input_tokens=50,
    cached_input_tokens=20_000,
    cache_write_5m_tokens=1_000,
    cache_write_1h_tokens=2_000,
    output_tokens=400,
    reasoning_tokens=250,
)


def test_anthropic_splits_writes_by_ttl() -> None:
    assert anthropic.decode_usage(_anthropic_usage()) == ANTHROPIC_EXPECTED


def test_anthropic_writes_the_split_leaves_out_are_five_minute_writes() -> None:
    raw = AnthropicUsage(
        input_tokens=5,
        output_tokens=1,
        cache_creation_input_tokens=1_500,
        cache_creation=CacheCreation(ephemeral_5m_input_tokens=0, ephemeral_1h_input_tokens=1_000),
    ).model_dump(exclude_none=True)
    usage = anthropic.decode_usage(raw)
    assert (usage.cache_write_5m_tokens, usage.cache_write_1h_tokens) == (500, 1_000)


def test_bedrock_claude_body_uses_the_anthropic_buckets() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(),
    }
    result = bedrock.decode_record(
        {"recordId": "r1", "modelOutput": message}, batch_id="j", model="claude"
    )
    assert result.usage == ANTHROPIC_EXPECTED


# -- Bedrock Converse / Nova -------------------------------------------------------------------


def _nova_record(usage: dict[str, Any]) -> dict[str, Any]:
    output = {"message": {"role": "assistant", "content": [{"text": "ok"}]}}
    out = {"output": output, "stopReason": "end_turn", "usage": usage}
    return {"recordId": "r1", "modelOutput": out}


def test_bedrock_converse_cache_details_split_writes_by_ttl() -> None:
    # botocore's TokenUsage: cacheDetails lists writes by TTL (1h before 5m)
    usage = {
        "inputTokens": 100,
        "outputTokens": 20,
        "totalTokens": 4_620,
        "cacheReadInputTokens": 1_500,
        "cacheWriteInputTokens": 3_000,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 2_000}, {"ttl": "5m", "inputTokens": 1_000}],
    }
    result = bedrock.decode_record(_nova_record(usage), batch_id="j", model="amazon.nova-pro-v1:0")
    assert result.usage == Usage(
        input_tokens=100,
        cached_input_tokens=1_500,
        cache_write_5m_tokens=1_000,
        cache_write_1h_tokens=2_000,
        output_tokens=20,
    )


def test_bedrock_nova_invoke_counts() -> None:
    # Nova's InvokeModel body names them ...TokenCount; no TTL split: 5-minute writes
    usage = {
        "inputTokens": 10,
        "outputTokens": 2,
        "totalTokens": 1_542,
        "cacheReadInputTokenCount": 1_024,
        "cacheWriteInputTokenCount": 506,
    }
    result = bedrock.decode_record(_nova_record(usage), batch_id="j", model="amazon.nova-lite-v1:0")
    assert result.usage == Usage(
        input_tokens=10, cached_input_tokens=1_024, cache_write_5m_tokens=506, output_tokens=2
    )
