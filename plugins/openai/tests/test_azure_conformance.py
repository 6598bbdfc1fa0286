"""The shared provider conformance suite, run on the Azure provider (classic client style)."""

from __future__ import annotations

import openai

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_openai import AzureProvider


class TestAzureConformance(ProviderConformance):
    provider_class = AzureProvider
    model = "gpt-4o-mini"
    # OpenAI's rule, shared by Azure: at most four stop sequences
    bad_item = BatchItem(
        messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"]
    )  # type: ignore[list-item]
    supports_cancel = True
    supports_find_batch = True
    lifecycle = "async"
    sync_sdk_seams = ((openai.OpenAI, "__init__"), (openai.AzureOpenAI, "__init__"))
    missing_batch_id = "batch_missing"
    client_attribute = "client"
    client_class = openai.AsyncOpenAI
    faults_reproducible = True
    connection_errors_retryable = True
