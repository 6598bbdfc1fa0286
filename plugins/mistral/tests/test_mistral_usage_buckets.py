"""Mistral's decoder against the provider's documented usage fields (issue #17 item 1).

The usage (or the whole reply) is built as the provider's SDK types define it, dumped as it
travels over the wire, and decoded by the adapter; every bucket of :class:`polybatch.items.Usage`
is checked: ``input_tokens`` is uncached input only, cache reads and writes (5-minute and 1-hour)
apart, ``output_tokens`` all billed output, reasoning included.
"""

from __future__ import annotations

from mistralai.client.models import UsageInfo

from polybatch.items import Usage
from polybatch.testing.helpers import chat_completion
from polybatch_mistral import codec as mistral

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
    line = {
        "id": "r1",
        "custom_id": "a",
        "response": {"status_code": 200, "body": chat_completion(raw)},
    }
    result = mistral.decode_result(line, provider="mistral")
    assert result.usage == Usage(input_tokens=952, cached_input_tokens=2_048, output_tokens=40)
