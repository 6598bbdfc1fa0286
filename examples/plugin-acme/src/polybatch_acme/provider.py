"""Provider ``acme``: Acme's OpenAI-style batch API, the compatible family plus Acme's differences."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from polybatch import formats
from polybatch.items import BatchItem
from polybatch.wire import WireError
from polybatch_openai import codec
from polybatch_openai.compatible import OpenAICompatibleProvider, Preset

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox import SandboxEngine

#: how Acme's API differs from OpenAI's, as data: where it is, its key, its words and limits
ACME = Preset(
    base_url="https://api.acme.example/v1",
    api_key_env="ACME_API_KEY",
    purpose="acme-batch",
    statuses={
        "validating": "queued",
        "in_progress": "running",
        "finalizing": "running",
        "cancelling": "stopping",
        "completed": "done",
        "cancelled": "stopped",
    },
    max_requests=10_000,
    max_bytes=100 * 1024 * 1024,
)


def plain_text(body: Mapping[str, Any]) -> None:
    """Acme's one rule that OpenAI lacks: every message is plain text. Raises WireError (a 400)."""
    for i, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise WireError("invalid_content", "Acme reads plain text", param=f"messages[{i}]")


class AcmeProvider(OpenAICompatibleProvider):
    """Acme's batch API: OpenAI's Files + Batches with Acme's status words, purpose and rule."""

    name = "acme"
    preset = ACME  # credential_env, limits, default_base_url and ACME_BASE_URL come from it
    key_patterns = (re.compile(r"\b(acme-)[A-Za-z0-9]{8,}"),)
    sandbox_prefix = "/acme"

    def validate_item(self, item: BatchItem, model: str) -> None:
        """OpenAI's rules, then Acme's own: the very function its sandbox answers with."""
        super().validate_item(item, model)
        try:
            plain_text(codec.encode_body(item, model))
        except WireError as exc:
            raise formats.item_error(exc, item) from None

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        from .sandbox import AcmeApi  # starlette is imported only when a sandbox starts

        return AcmeApi(engine, cls.name, cls.preset).routes()
