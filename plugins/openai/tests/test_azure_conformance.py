"""The shared provider conformance suite, run on the Azure provider (classic client style)."""

from __future__ import annotations

import openai
from openai_testlib import OpenAISDKConformance

from polybatch.items import BatchItem
from polybatch_openai import AzureProvider


class TestAzureConformance(OpenAISDKConformance):
    provider_class = AzureProvider
    model = "gpt-4o-mini"
    # OpenAI's rule, shared by Azure: at most four stop sequences
    bad_item = BatchItem(
        messages=[{"role": "user", "content": "x"}], stop=["a", "b", "c", "d", "e"]
    )  # type: ignore[list-item]
    supports_cancel = True
    supports_find_batch = True
    sync_sdk_seams = ((openai.OpenAI, "__init__"), (openai.AzureOpenAI, "__init__"))
