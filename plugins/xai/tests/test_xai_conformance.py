"""The xai provider against polybatch's provider conformance suite, on its sandbox routes."""

from __future__ import annotations

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_xai.provider import XAIProvider


class TestXAIConformance(ProviderConformance):
    provider_class = XAIProvider
    model = "grok-4-1-fast-non-reasoning"
    # the codec sends text only: an image part must be refused, not silently dropped
    bad_item = BatchItem(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    )
    supports_find_batch = True
