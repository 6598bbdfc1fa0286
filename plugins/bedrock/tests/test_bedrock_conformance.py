"""The Bedrock provider against the shared provider conformance suite."""

from __future__ import annotations

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_bedrock.provider import BedrockProvider


class TestBedrockConformance(ProviderConformance):
    provider_class = BedrockProvider
    model = "anthropic.claude-haiku-4-5-20251001-v1:0"
    # no Bedrock model family takes a 'seed': an item asking for one cannot be expressed
    bad_item = BatchItem(custom_id="bad", messages=[{"role": "user", "content": "hi"}], seed=7)
    supports_cancel = True
    # the job name carries the polybatch job and chunk: ListModelInvocationJobs finds it
    supports_find_batch = True
    # the runner retries whole steps; boto3's own backoff would only slow the tests
    provider_settings = {"max_retries": 0}
    # boto3 is blocking: the adapter writes submit/poll/results/cancel/find_batch/cleanup and the
    # base derives the async side through worker threads
    lifecycle = "blocking"
