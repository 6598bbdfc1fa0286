"""The sandbox's webhook sender: a signed event to ``engine.webhook_url`` when a batch ends.

Each provider's routes say what its event looks like (:meth:`ProviderApi.webhook_event`, registered
in ``engine.webhook_events`` per namespace); this module signs and sends it the Standard Webhooks
way (headers ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``, a ``whsec_`` secret holding the base64 key), the scheme OpenAI and Gemini
both sign with. Batch lifecycles are computed from the clock (see :mod:`.engine`), so a background
thread looks for newly ended batches a few times a second. Faults (lost, duplicated, late, forged
deliveries) come from :meth:`FaultInjector.webhook`.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from ..webhook_hooks import standard_signature

if TYPE_CHECKING:
    from .engine import SandboxEngine

log = logging.getLogger("polybatch.sandbox")

#: how often the sender looks for ended batches, seconds
SCAN_SECONDS = 0.05


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret (``whsec_`` + base64 key)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery signed with ``secret``."""
    mac = standard_signature(secret, webhook_id, str(timestamp), body)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{mac}",
    }


class WebhookSender:
    """Sends each ended batch's event once (as faults allow); ``deliveries`` logs every attempt
    as (webhook id, batch id, HTTP status or 0, forged) for tests."""

    def __init__(self, engine: SandboxEngine) -> None:
        self.engine = engine
        self.deliveries: list[tuple[str, str, int, bool]] = []
        self._sent: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="polybatch-webhooks", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(SCAN_SECONDS):
            if not self.engine.webhook_url:
                continue
            try:
                self.scan()
            except Exception:  # never let the sandbox's sender die on one bad batch
                log.exception("webhook sender")

    def scan(self) -> None:
        """Send the event of every batch that has ended since the last scan."""
        engine = self.engine
        due: list[tuple[str, dict[str, Any], int, str]] = []
        with engine.lock:
            now = engine.now()
            for b in list(engine.batches.values()):
                if b.id in self._sent or b.ended_at(now) is None:
                    continue
                self._sent.add(b.id)
                shape = engine.webhook_events.get(b.namespace)
                event = shape(b, b.state(now)) if shape is not None else None
                if event is not None:
                    due.append((b.id, event, b.serial, b.namespace))
        for batch_id, event, serial, namespace in due:
            plan = engine.injector.webhook(namespace, serial)
            if plan.lost:
                engine.note_fault("webhook_lost", f"{namespace} batch #{serial} {batch_id}")
                continue
            webhook_id = "wh_" + secrets.token_hex(12)
            body = json.dumps(event).encode()
            if plan.forged:
                engine.note_fault("webhook_forged", f"{namespace} batch #{serial} {batch_id}")
                self.post(webhook_id + "f", batch_id, body, new_secret(), forged=True)
            if plan.copies > 1:
                engine.note_fault("webhook_duplicate", f"{namespace} batch #{serial} {batch_id}")
            if plan.delay:
                engine.note_fault("webhook_late", f"{namespace} batch #{serial} {batch_id}")
            for _ in range(plan.copies):
                timer = threading.Timer(
                    plan.delay, self.post, (webhook_id, batch_id, body, engine.webhook_secret)
                )
                timer.daemon = True
                timer.start()

    def post(
        self, webhook_id: str, batch_id: str, body: bytes, secret: str, *, forged: bool = False
    ) -> int:
        """Deliver one signed event; the receiver's HTTP status (0: it could not be reached)."""
        url = self.engine.webhook_url
        if not url:
            return 0
        headers = signed_headers(secret, webhook_id, int(time.time()), body)
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status = int(resp.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            log.warning("webhook to %s failed: %s", url, exc)
            status = 0
        self.deliveries.append((webhook_id, batch_id, status, forged))
        return status
