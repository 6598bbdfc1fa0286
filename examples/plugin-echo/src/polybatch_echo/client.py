"""The Echo API's client: the stand-in for a vendor SDK.

A real plugin does not have this module: it imports its vendor's official SDK (``openai``,
``anthropic``, ...) and never writes HTTP calls to the provider by hand. Echo has no vendor, so this
tiny client (standard library only) plays the SDK's part: it speaks the wire, raises its own
exception type, and knows nothing about polybatch.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


class EchoAPIError(Exception):
    """An HTTP error from the Echo API (``status`` is None when the server was not reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EchoClient:
    """``POST /v1/batches``, ``GET /v1/batches[/{id}[/results]]``, ``POST .../cancel``."""

    def __init__(self, *, api_key: str, base_url: str, timeout: float = 30.0) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise EchoAPIError(f"HTTP {exc.code}: {detail}", exc.code) from exc
        except OSError as exc:  # refused, reset, timed out
            raise EchoAPIError(f"cannot reach {self.base_url}: {exc}") from exc

    def create_batch(self, requests: list[dict[str, Any]], metadata: dict[str, str]) -> Any:
        """Create a batch of inline requests; returns the batch object."""
        return json.loads(
            self._call("POST", "/v1/batches", {"requests": requests, "metadata": metadata})
        )

    def get_batch(self, batch_id: str) -> Any:
        """The batch object."""
        return json.loads(self._call("GET", f"/v1/batches/{batch_id}"))

    def list_batches(self) -> Any:
        """Every batch object, newest first."""
        return json.loads(self._call("GET", "/v1/batches"))["data"]

    def cancel_batch(self, batch_id: str) -> Any:
        """Ask for the batch to be cancelled."""
        return json.loads(self._call("POST", f"/v1/batches/{batch_id}/cancel"))

    def results(self, batch_id: str) -> Iterator[Any]:
        """The result lines of an ended batch."""
        for line in self._call("GET", f"/v1/batches/{batch_id}/results").splitlines():
            if line.strip():
                yield json.loads(line)
