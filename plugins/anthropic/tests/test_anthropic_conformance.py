"""The Anthropic provider against the shared provider conformance suite."""

from __future__ import annotations

import anthropic

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_anthropic.provider import AnthropicProvider


class TestAnthropicConformance(ProviderConformance):
    provider_class = AnthropicProvider
    model = "claude-haiku-4-5"
    # Anthropic takes no 'seed': an item asking for one cannot be expressed
    bad_item = BatchItem(custom_id="bad", messages=[{"role": "user", "content": "hi"}], seed=7)
    supports_cancel = True
    # Message Batches carry no metadata: a batch is not found by it, but adopted from the
    # listing (alist_batches_since, polybatch.jobs.adopt)
    supports_find_batch = False
    provider_settings = {"max_retries": 0}
    lifecycle = "async"
    # the Message Batches rate limits: a create over the processing queue is a 429
    queue_full_at_create = "rate_limit_error"
    # it uploads no files: nothing to clean up; nothing to find by metadata
    lifecycle_defaults = ("cleanup", "find_batch")
    sync_sdk_seams = ((anthropic.Anthropic, "__init__"),)
    client_attribute = "client"
    client_class = anthropic.AsyncAnthropic
    faults_reproducible = True
    connection_errors_retryable = True
