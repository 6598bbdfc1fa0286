"""Gemini project (static) webhooks: verify a delivery, map its event to a batch.

google-genai 3.6.1 registers webhooks (``client.aio.webhooks.create``) but ships no verifier, so
deliveries are checked by polybatch's Standard Webhooks verifier
(:func:`polybatch.webhook_hooks.verify_standard_webhook`). The event shape is the docs' "Webhook
envelope" (ai.google.dev/gemini-api/docs/webhooks): ``{type, version, timestamp, data: {id, ...}}``.
Whether ``data.id`` is the bare id or ``batches/{id}`` is not shown by a real delivery here: both
map to the ``batches/{id}`` name polybatch keeps.

Per-job (dynamic, ``CreateBatchJobConfig.webhook_config``) deliveries are not handled: they are
reported to be RS256 JWTs checked against Google's JWKS (see docs/webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from polybatch.batches import BatchState, WebhookEvent
from polybatch.errors import WebhookRejectedError
from polybatch.webhook_hooks import verify_standard_webhook

#: the env var holding the signing secret of the project webhook (GEMINI_ like the API key;
#: polybatch's own name, since Google's SDK reads none)
SECRET_ENV = "GEMINI_WEBHOOK_SECRET"

#: what ``webhooks setup`` subscribes to (the SDK's ``WebhookSubscribedEvent`` batch values)
BATCH_EVENTS: tuple[Literal["batch.succeeded", "batch.failed", "batch.expired"], ...] = (
    "batch.succeeded",
    "batch.failed",
    "batch.expired",
)

#: Gemini's batch event types (the SDK's ``WebhookSubscribedEvent``) -> neutral end state
WEBHOOK_STATES: dict[str, BatchState] = {
    "batch.succeeded": "completed",
    "batch.failed": "failed",
    "batch.expired": "expired",
}


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookEvent | None:
    """A verified delivery's batch event, None for other event types (interactions, video)."""
    event = verify_standard_webhook(headers, body, secret)
    kind = event.get("type") if isinstance(event, dict) else None
    state = WEBHOOK_STATES.get(kind) if isinstance(kind, str) else None
    if kind is None or state is None:
        return None
    data = event.get("data")
    ident = data.get("id") if isinstance(data, dict) else None
    if not isinstance(ident, str) or not ident:
        raise WebhookRejectedError(f"gemini {kind} event without data.id")
    webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
    return WebhookEvent(
        webhook_id=webhook_id,
        type=kind,
        batch_id=ident if ident.startswith("batches/") else f"batches/{ident}",
        state=state,
    )
