"""The Echo provider: the BatchProvider seam over the Echo API's client."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem, BatchResult, ItemError, ResultStatus, Usage
from polybatch.providers import BatchProvider, BatchState, BatchStatus, Limits, SubmittedBatch

from .client import EchoAPIError, EchoClient

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

T = TypeVar("T")

#: the Echo API's batch states -> polybatch's neutral ones
STATES: dict[str, BatchState] = {
    "queued": "validating",
    "running": "in_progress",
    "cancelling": "cancelling",
    "done": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
#: the Echo API's per-request outcomes -> BatchResult.status
OUTCOMES: dict[str, ResultStatus] = {
    "ok": "succeeded",
    "error": "errored",
    "canceled": "canceled",
    "expired": "expired",
}
ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


class EchoProvider(BatchProvider):
    """Provider ``echo``: batches of inline requests, results as JSON lines."""

    name = "echo"
    credential_env = ("ECHO_API_KEY",)
    limits = Limits(max_requests=1_000, max_bytes=10 * 1024 * 1024, custom_id_pattern=ID_PATTERN)
    sandbox_prefix = "/echo"

    @property
    def client(self) -> EchoClient:
        """The API client (built per use: it holds no connection)."""
        return EchoClient(
            api_key=self.require_api_key(), base_url=self.base_url or "https://echo.invalid"
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call; its exceptions become ProviderError here, and only here."""
        try:
            return fn()
        except EchoAPIError as exc:
            raise ProviderError(
                f"{what} failed: {exc}", provider=self.name, status_code=exc.status
            ) from exc

    # -- items: neutral -> wire ----------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Echo reads text only: refuse images and other non-text parts rather than drop them."""
        for i, message in enumerate(item.messages):
            if isinstance(message.content, list):
                for j, part in enumerate(message.content):
                    if part.get("type") != "text":
                        raise ItemValidationError(
                            "echo accepts text parts only", field=f"messages[{i}].content[{j}]"
                        )

    def wire_custom_id(self, custom_id: str) -> str:
        """Ids Echo accepts pass unchanged; others become ``h-`` + a hash (pure, so reversible)."""
        if re.match(ID_PATTERN, custom_id) and not custom_id.startswith("h-"):
            return custom_id
        return "h-" + hashlib.sha256(custom_id.encode()).hexdigest()[:32]

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One request as compact JSON."""
        request = {
            "custom_id": self.wire_custom_id(item.custom_id or ""),
            "model": item.model or model,
            "messages": [{"role": m.role, "text": m.text} for m in item.messages],
            "max_tokens": item.max_tokens,
        }
        return json.dumps(request, separators=(",", ":")).encode()

    # -- the lifecycle -------------------------------------------------------------------------
    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create one batch from the encoded lines, tagged with ``metadata``."""
        with lines_path.open("rb") as fh:
            requests = [json.loads(line) for line in fh if line.strip()]
        batch = self._call(
            "create batch", lambda: self.client.create_batch(requests, dict(metadata))
        )
        return SubmittedBatch(batch_id=batch["id"])

    def poll(self, batch_id: str) -> BatchStatus:
        """The batch's state and counts in neutral terms."""
        batch = self._call(f"get batch {batch_id}", lambda: self.client.get_batch(batch_id))
        counts = batch["counts"]
        return BatchStatus(
            batch_id=batch_id,
            state=STATES[batch["status"]],
            total=counts["total"],
            completed=counts["ok"],
            failed=counts["error"],
        )

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """One BatchResult per result line; ``custom_id`` stays the wire id (the runner maps it)."""
        lines = self._call(f"results of {batch_id}", lambda: list(self.client.results(batch_id)))
        for line in lines:
            error = line.get("error")
            yield BatchResult(
                custom_id=line["custom_id"],
                status=OUTCOMES[line["outcome"]],
                text=line.get("text"),
                usage=Usage(
                    input_tokens=line.get("usage", {}).get("input", 0),
                    output_tokens=line.get("usage", {}).get("output", 0),
                ),
                error=ItemError(**error) if error else None,
                model=line.get("model"),
                provider=self.name,
                batch_id=batch_id,
                response=line,
            )

    def cancel(self, batch_id: str) -> None:
        """Ask Echo to cancel the batch."""
        self._call(f"cancel {batch_id}", lambda: self.client.cancel_batch(batch_id))

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest batch tagged with all of ``metadata`` (the runner's crash recovery)."""
        batches = self._call("list batches", self.client.list_batches)
        for batch in batches:
            if all(batch["metadata"].get(k) == v for k, v in metadata.items()):
                return str(batch["id"])
        return None

    # -- the sandbox ---------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated Echo API, mounted at ``/echo``."""
        from .sandbox import routes

        return routes(engine)

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """What a user exports to point Echo clients at the sandbox."""
        return {"ECHO_API_KEY": api_key}
