"""The echo provider against polybatch's provider conformance suite."""

from __future__ import annotations

from polybatch_echo import EchoProvider

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance


class TestEchoConformance(ProviderConformance):
    provider_class = EchoProvider
    model = "echo-1"
    # echo reads text only, so an image part must be refused, not silently dropped
    bad_item = BatchItem(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    )
    supports_find_batch = True
