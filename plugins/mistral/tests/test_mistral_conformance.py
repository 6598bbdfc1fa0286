"""The Mistral provider against the shared provider conformance suite."""

from __future__ import annotations

from mistralai.client import Mistral
from mistralai.client.basesdk import BaseSDK

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_mistral.provider import MistralProvider


class TestMistralConformance(ProviderConformance):
    provider_class = MistralProvider
    model = "mistral-small-latest"
    # Mistral calls the seed 'random_seed': a 'seed' in extra would be silently ignored, so refused
    bad_item = BatchItem(
        custom_id="bad",
        messages=[{"role": "user", "content": "hi"}],
        extra={"seed": 7},
    )
    supports_cancel = True
    supports_find_batch = True
    # the first answer is what the suite checks: no SDK retries (they would only slow it down)
    provider_settings = {"retries": False}
    lifecycle = "async"
    # every sync SDK method sends through BaseSDK.do_request; the *_async ones do not
    sync_sdk_seams = ((BaseSDK, "do_request"),)
    missing_batch_id = "job-missing"
    client_attribute = "client"
    client_class = Mistral
    faults_reproducible = True
    connection_errors_retryable = True
    reports_progress = True
