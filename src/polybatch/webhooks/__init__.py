"""Provider webhooks: a receiver that collects a batch's results as soon as it ends.

- :func:`app`: the ASGI app (``POST /webhooks/{provider}``), served by ``polybatch webhooks
  serve`` or mounted in a user's own server
- :mod:`.store`: where signing secrets are kept (never the ledger or the logs)
- :func:`register`: ``polybatch webhooks setup``, an endpoint registered through the SDK
"""

from __future__ import annotations

from .app import Receiver, app
from .setup import register

__all__ = ["Receiver", "app", "register"]
