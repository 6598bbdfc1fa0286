"""Every adapter's decoder against its provider's documented usage fields (issue #17 item 1).

Each test builds the usage (or the whole reply) as the provider's SDK types define it, dumps it
the way it travels over the wire, decodes it with the adapter and checks every bucket of
:class:`polybatch.items.Usage`: ``input_tokens`` is uncached input only, cache reads and writes
(5-minute and 1-hour) apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import CacheCreation, OutputTokensDetails
from anthropic.types import Usage as AnthropicUsage
from google.genai import types as genai
from mistralai.client.models import UsageInfo
from openai.types import CompletionUsage
from openai.types.completion_usage import CompletionTokensDetails, PromptTokensDetails
from openrouter.components.chatusage import (
    ChatUsage,
    ChatUsageCompletionTokensDetails,
    ChatUsagePromptTokensDetails,
)

from polybatch.items import Usage
from polybatch_anthropic import codec as anthropic
from polybatch_bedrock import codec as bedrock
from polybatch_gemini import codec as gemini
from polybatch_mistral import codec as mistral
from polybatch_openai import codec as openai
from polybatch_openrouter import codec as openrouter
from polybatch_vertex import codec as vertex
from polybatch_xai import codec as xai


def _chat_body(usage: dict[str, Any], model: str = "m") -> dict[str, Any]:
    message = {"role": "assistant", "content": "ok"}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


def _output_line(body: dict[str, Any]) -> dict[str, Any]:
    response = {"status_code": 200, "request_id": "req_1", "body": body}
    return {"id": "batch_req_1", "custom_id": "a", "response": response, "error": None}


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
    result = openai.decode_result(_output_line(_chat_body(raw, "gpt-6-sol")), provider="openai")
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


# -- Mistral ------------------------------------------------------------------------------------


def test_mistral_cached_prompt_tokens() -> None:
    # UsageInfo allows extra fields: the API's prompt_tokens_details rides along as one
    info = UsageInfo.model_validate(
        {
            "prompt_tokens": 3_000,
            "completion_tokens": 40,
            "total_tokens": 3_040,
            "prompt_tokens_details": {"cached_tokens": 2_048},
        }
    )
    raw = info.model_dump(by_alias=True)
    line = {"id": "r1", "custom_id": "a", "response": {"status_code": 200, "body": _chat_body(raw)}}
    result = mistral.decode_result(line, provider="mistral")
    assert result.usage == Usage(input_tokens=952, cached_input_tokens=2_048, output_tokens=40)


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
        _output_line(_chat_body(raw)), provider="openrouter", batch_id="b"
    )
    assert result.usage == Usage(
        input_tokens=1_000,
        cached_input_tokens=1_000,
        cache_write_5m_tokens=3_000,
        output_tokens=500,
        reasoning_tokens=120,
    )


# -- xAI ----------------------------------------------------------------------------------------


def _xai_row(usage: dict[str, Any]) -> dict[str, Any]:
    body = _chat_body(usage, "grok-4")
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


def test_openai_style_total_keeps_reasoning_inside() -> None:
    # the shared decoder only adds reasoning when the total says it is outside
    raw = CompletionUsage(
        prompt_tokens=10,
        completion_tokens=50,
        total_tokens=60,
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=30),
    ).model_dump(exclude_none=True)
    assert openai.usage_from_body(raw).output_tokens == 50


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


# -- Gemini and Vertex -------------------------------------------------------------------------


def _gemini_response() -> dict[str, Any]:
    metadata = genai.GenerateContentResponseUsageMetadata(
        prompt_token_count=5_000,
        cached_content_token_count=4_096,
        candidates_token_count=60,
        thoughts_token_count=300,
        tool_use_prompt_token_count=10,
        total_token_count=5_370,
    )
    response = genai.GenerateContentResponse(
        candidates=[
            genai.Candidate(
                content=genai.Content(role="model", parts=[genai.Part(text="ok")]),
                finish_reason=genai.FinishReason.STOP,
            )
        ],
        usage_metadata=metadata,
        model_version="gemini-2.5-flash",
    )
    dumped: dict[str, Any] = response.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


# promptTokenCount includes the cached tokens; thoughts are billed as output, apart from
# candidatesTokenCount; tool-use prompt tokens are input
GEMINI_EXPECTED = Usage(
    input_tokens=904 + 10, cached_input_tokens=4_096, output_tokens=360, reasoning_tokens=300
)


def test_gemini_cached_content_and_thoughts() -> None:
    response = _gemini_response()
    assert "usageMetadata" in response  # the wire's camelCase names
    result = gemini.decode_result({"key": "a", "response": response}, batch_id="b")
    assert result.usage == GEMINI_EXPECTED


def test_vertex_reads_the_same_usage_metadata() -> None:
    row = {"key": "a", "response": _gemini_response()}
    result = vertex.decode_row(row, batch_id="b", model="gemini-2.5-flash")
    assert result.usage == GEMINI_EXPECTED
