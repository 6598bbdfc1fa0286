"""OpenAI's webhooks in the sandbox: the ``batch.*`` event bodies and ``/v1/webhook_endpoints``.

Shapes from the installed SDK (``openai/types/webhooks/batch_*_webhook_event.py``:
``{id, created_at, data: {id}, type, object: "event"}``; ``webhook_endpoint_with_secret.py``).
Signing and sending are the core sandbox's (:mod:`polybatch.sandbox.webhooks`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from polybatch.sandbox.webhooks import new_secret

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from polybatch.sandbox.api import ProviderApi
    from polybatch.sandbox.engine import SandboxBatch

#: neutral end state -> OpenAI's event type
EVENT_TYPES = {
    "completed": "batch.completed",
    "failed": "batch.failed",
    "expired": "batch.expired",
    "cancelled": "batch.cancelled",
}


def batch_event(api: ProviderApi, batch: SandboxBatch, state: str) -> dict[str, Any] | None:
    """The event OpenAI sends when ``batch`` ends in ``state``."""
    kind = EVENT_TYPES.get(state)
    if kind is None:
        return None
    return {
        "id": "evt_" + api.engine.new_id(""),
        "created_at": int(time.time()),
        "data": {"id": batch.id},
        "type": kind,
        "object": "event",
    }


async def create_endpoint(api: ProviderApi, request: Request) -> Response:
    """``POST /v1/webhook_endpoints``: the sandbox sends its batch events to ``url`` from now
    on, signed with the secret this answer holds (returned once, as the API does)."""
    body = await request.json()
    url, name = body.get("url"), body.get("name")
    if not isinstance(url, str) or not url or not isinstance(name, str):
        return api.error(400, "url and name are required", param="url")
    secret = new_secret()
    api.engine.webhook_url, api.engine.webhook_secret = url, secret
    return api.json(
        {
            "id": "we_" + api.engine.new_id(""),
            "created_at": int(time.time()),
            "event_types": list(body.get("event_types") or []),
            "name": name,
            "object": "webhook_endpoint",
            "signing_secret": secret,
            "signing_secret_hint": secret[:10] + "...",
            "url": url,
        }
    )
