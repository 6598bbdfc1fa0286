"""The webhook side of the provider seam: the hooks a plugin implements for push notifications.

:class:`~polybatch.providers.BatchProvider` inherits them; by default a provider sends no webhooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

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
