"""The webhook side of the provider seam: the hooks a plugin implements for push notifications,
and the one Standard Webhooks signer/verifier (stdlib HMAC) for SDKs that ship none.

:class:`~polybatch.providers.BatchProvider` inherits them; by default a provider sends no webhooks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from .batches import WebhookEvent
from .errors import ConfigError, WebhookRejectedError


class WebhookHooks:
    """Verifying deliveries and registering endpoints, in the vendor's SDK (see docs/webhooks.md)."""

    name: ClassVar[str]

    #: the env var holding the webhook signing secret (None: the provider sends no webhooks)
    webhook_secret_env: ClassVar[str | None] = None

    def verify_webhook(
        self, headers: Mapping[str, str], body: bytes, secret: str
    ) -> WebhookEvent | None:
        """Verify a delivery with the vendor's SDK: the batch event it carries, None for an event
        that is not about a batch; WebhookRejectedError when it fails verification."""
        raise WebhookRejectedError(f"{self.name} sends no webhooks polybatch can verify")

    async def aregister_webhook(self, url: str) -> tuple[str, str]:
        """Register ``url`` for batch events with the provider: (endpoint id, signing secret)."""
        raise ConfigError(f"{self.name}: webhook endpoints cannot be registered from code")


#: how far a delivery's ``webhook-timestamp`` may be from now (the Standard Webhooks default)
TOLERANCE_SECONDS = 300


def standard_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature of one delivery: base64 HMAC-SHA256 of
    ``"{id}.{timestamp}.{body}"`` keyed by the base64 key of a ``whsec_`` secret (a secret
    without the prefix is used as raw bytes). The sandboxes sign with it, verifiers check it."""
    key = (
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        if secret.startswith("whsec_")
        else secret.encode()
    )
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify_standard_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> Any:
    """Check a Standard Webhooks delivery (``webhook-id``, ``webhook-timestamp`` within
    :data:`TOLERANCE_SECONDS`, one of the space-separated ``v1,<sig>`` of ``webhook-signature``)
    and return its JSON body; WebhookRejectedError naming what failed. For providers whose SDK
    has no verifier (google-genai)."""
    low = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp = low.get("webhook-id", ""), low.get("webhook-timestamp", "")
    given = low.get("webhook-signature", "")
    if not (webhook_id and stamp and given):
        raise WebhookRejectedError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent = int(stamp)
    except ValueError:
        raise WebhookRejectedError(f"webhook-timestamp is not an integer: {stamp!r}") from None
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_SECONDS:
        raise WebhookRejectedError("webhook-timestamp is more than 5 minutes off")
    try:
        expected = standard_signature(secret, webhook_id, stamp, body)
    except binascii.Error:
        raise WebhookRejectedError("the signing secret is not whsec_<base64>") from None
    for sig in given.split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            break
    else:
        raise WebhookRejectedError("no webhook-signature matches")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookRejectedError("the body is not JSON") from None
