"""The acme provider against polybatch's provider conformance suite, on its sandbox routes."""

from __future__ import annotations

from polybatch_acme.provider import AcmeProvider

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance


class TestAcmeConformance(ProviderConformance):
    provider_class = AcmeProvider
    model = "acme-1"
    # Acme reads plain text, so an image part must be refused, not silently dropped
    bad_item = BatchItem(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    )
    supports_find_batch = True
