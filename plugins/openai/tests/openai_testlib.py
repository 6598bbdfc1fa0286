"""What the OpenAI plugin's tests share beyond polybatch.testing's helpers: the key, the model, the
provider and an SDK client pointed at a sandbox (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import openai

from polybatch.sandbox import SandboxServer
from polybatch.testing import ProviderConformance, make_items
from polybatch.testing import by_id as by_id
from polybatch.testing import submit_items as _submit_items
from polybatch.testing import wait_terminal as wait_terminal
from polybatch.testing import write_lines as write_lines
from polybatch_openai.provider import OpenAIProvider

KEY = "sk-sandbox-test-key-0123456789"
MODEL = "gpt-4o-mini"

ServerFactory = Callable[..., SandboxServer]
#: ``submit_items(provider, items, tmp_path, metadata=..., name=...)`` on this plugin's model
submit_items = partial(_submit_items, model=MODEL)
#: the generic items helper under the name these tests use
items = make_items


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> OpenAIProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = OpenAIProvider.sandbox_settings(server.url, api_key)
    return OpenAIProvider(**settings, settings={"max_retries": 0})


def inspector(provider: OpenAIProvider) -> openai.OpenAI:
    """A plain sync SDK client on the provider's endpoint, to look at what the sandbox holds
    (the adapter itself only has async clients)."""
    return openai.OpenAI(api_key=KEY, base_url=provider.resolved_base_url(), max_retries=0)


class OpenAISDKConformance(ProviderConformance):
    """What every provider on the openai SDK's async client declares to the conformance suite
    (not collected itself: its name does not start with ``Test``)."""

    lifecycle = "async"
    sync_sdk_seams: tuple[tuple[type, str], ...] = ((openai.OpenAI, "__init__"),)
    missing_batch_id = "batch_missing"
    client_attribute = "client"
    client_class = openai.AsyncOpenAI
    faults_reproducible = True
    connection_errors_retryable = True
    reports_progress = True


def nullable_optionals(node: Any) -> Any:
    """Allow null for every optional property: the spec omits it, the API sends it."""
    if isinstance(node, dict):
        node = {k: nullable_optionals(v) for k, v in node.items()}
        props = node.get("properties")
        if isinstance(props, dict):
            required = set(node.get("required", []))
            node["properties"] = {
                k: v if k in required else {"anyOf": [v, {"type": "null"}]}
                for k, v in props.items()
            }
        return node
    if isinstance(node, list):
        return [nullable_optionals(v) for v in node]
    return node
