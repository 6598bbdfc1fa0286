"""The OpenAI provider against the shared provider conformance suite."""

from __future__ import annotations

from openai_testlib import OpenAISDKConformance

from polybatch.items import BatchItem
from polybatch_openai.provider import OpenAIProvider


class TestOpenAIConformance(OpenAISDKConformance):
    provider_class = OpenAIProvider
    model = "gpt-4o-mini"
    # 'model' is the item's own field: smuggling it through extra is ambiguous, so it is refused
    bad_item = BatchItem(
        custom_id="bad",
        messages=[{"role": "user", "content": "hi"}],
        extra={"model": "gpt-4o"},
    )
    supports_cancel = True
    supports_find_batch = True
    # the first answer is what the suite checks: no SDK retries (they would only slow it down)
    provider_settings = {"max_retries": 0}
