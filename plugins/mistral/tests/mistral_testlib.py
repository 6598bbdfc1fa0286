"""What the Mistral plugin's tests share beyond polybatch.testing's helpers: the key, the model, the
provider and an SDK client pointed at a sandbox (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from mistralai.client import Mistral

from polybatch.sandbox import SandboxServer
from polybatch.testing import by_id as by_id
from polybatch.testing import make_items
from polybatch.testing import submit_items as _submit_items
from polybatch.testing import wait_terminal as wait_terminal
from polybatch.testing import write_lines as write_lines
from polybatch_mistral.provider import MistralProvider

KEY = "mistral-sandbox-test-key-0123456789"
MODEL = "mistral-small-latest"

ServerFactory = Callable[..., SandboxServer]
#: ``submit_items(provider, items, tmp_path, metadata=..., name=...)`` on this plugin's model
submit_items = partial(_submit_items, model=MODEL)
#: the generic items helper under the name these tests use
items = make_items


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> MistralProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = MistralProvider.sandbox_settings(server.url, api_key)
    return MistralProvider(**settings, settings={"retries": False})


def sdk_client(server: SandboxServer, *, api_key: str = KEY) -> Mistral:
    """A sync SDK client of the test's own on ``server``, to inspect what the provider left there.

    Not the provider's client: that one is async and belongs to the event loop it was built on.
    """
    return Mistral(api_key=api_key, server_url=f"{server.url}{MistralProvider.sandbox_prefix}")
