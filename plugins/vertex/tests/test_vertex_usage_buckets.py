"""Gemini (and Vertex)'s decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from typing import Any

from google.genai import types as genai

from polybatch.items import Usage
from polybatch_gemini import codec as gemini
from polybatch_vertex import codec as vertex

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
