"""The openrouter provider against polybatch's provider conformance suite, on its sandbox routes."""

from __future__ import annotations

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_openrouter.provider import OpenRouterProvider


class TestOpenRouterConformance(ProviderConformance):
    provider_class = OpenRouterProvider
    model = "openai/gpt-4o-mini"
    # a content part the chat endpoint does not take must be refused, not silently dropped
    bad_item = BatchItem(messages=[{"role": "user", "content": [{"type": "input_audio"}]}])
    # batches carry no metadata: a batch cannot be found again (see the provider's docstring)
    supports_find_batch = False
    # the first answer is what the suite checks: no SDK retries (they would only slow it down)
    provider_settings = {"retries": False}
