"""Gemini's webhooks in the sandbox: the ``batch.*`` event bodies and ``POST /{version}/webhooks``.

The route is the one google-genai 3.6.1 calls (``_gaos/webhooks.py`` ``create``: ``POST
/{api_version}/webhooks`` with ``{name, subscribed_events, uri}``; the answer is a ``Webhook`` whose
``new_signing_secret`` is returned once). The event body follows the Gemini webhooks docs
(ai.google.dev/gemini-api/docs/webhooks, "Webhook envelope"; the SDK has no event type):
``{type, version: "v1", timestamp, data: {id, output_file_uri}}``. Signing and sending are the core
sandbox's (:mod:`polybatch.sandbox.webhooks`), with the engine's ``webhook_url``/``webhook_secret``
and hook faults.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from polybatch.sandbox.webhooks import new_secret

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from polybatch.sandbox.api import ProviderApi
    from polybatch.sandbox.engine import SandboxBatch

#: neutral end state -> Gemini's event type (a cancelled batch sends no batch event in the SDK's
#: list of subscribable events)
EVENT_TYPES = {
    "completed": "batch.succeeded",
    "failed": "batch.failed",
    "expired": "batch.expired",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def batch_event(batch: SandboxBatch, state: str) -> dict[str, Any] | None:
    """The event Gemini sends when ``batch`` ends in ``state``; ``data.id`` is the bare id (the
    docs' example is ``batch_123456``), which the adapter maps back to ``batches/{id}``."""
    kind = EVENT_TYPES.get(state)
    if kind is None:
        return None
    # the docs add ``output_file_uri`` to batch.succeeded; polybatch reads results through the
    # batch itself, so the sandbox leaves it out
    return {"type": kind, "version": "v1", "timestamp": _now(), "data": {"id": batch.id}}


async def create_webhook(api: ProviderApi, request: Request) -> Response:
    """``POST /{version}/webhooks``: the sandbox sends its batch events to ``uri`` from now on,
    signed with the ``new_signing_secret`` this answer holds (returned once)."""
    try:
        body = await request.json()
    except ValueError:
        return api.error(400, "Invalid JSON payload received.")
    uri, events = body.get("uri"), body.get("subscribed_events")
    if not isinstance(uri, str) or not uri or not isinstance(events, list) or not events:
        return api.error(400, "* webhook.uri and webhook.subscribed_events are required")
    secret = new_secret()
    api.engine.webhook_url, api.engine.webhook_secret = uri, secret
    ident = api.engine.new_id("")
    now = _now()
    return api.json(
        {
            "name": str(body.get("name") or f"webhooks/{ident}"),
            "id": ident,
            "uri": uri,
            "subscribed_events": events,
            "state": "enabled",
            "create_time": now,
            "update_time": now,
            "new_signing_secret": secret,
        }
    )
