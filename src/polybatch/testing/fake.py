"""``FakeProvider``: the provider ``fake``, in process, with no HTTP, no key and no sandbox.

Registered through the core distribution's own ``polybatch`` entry point, exactly as a third
party's provider is, so ``polybatch run in.jsonl --model fake:echo`` works out of the box and a
user's pipeline can be tested without a server (as pydantic-ai's ``TestModel`` allows)::

    from polybatch.testing import FakeProvider

    fake = FakeProvider(outcomes={"q-2": "error", "q-3": "expire"})
    job = polybatch.submit(items, "fake:echo", provider_settings={"outcomes": {"q-2": "error"}})

Replies come from the sandbox's :class:`~polybatch.sandbox.SyntheticModel` (texts and usage are
derived from the request: the same request always gets the same reply, ``max_tokens`` and JSON
schemas honoured). Each item's outcome is scriptable, first match wins:

1. ``outcomes``, a constructor argument: a mapping ``custom_id -> outcome`` or a callable
   ``(custom_id) -> outcome | None``;
2. the ``outcomes`` setting (a mapping, so it can come from a profile or ``provider_settings``);
3. a marker in the custom id: ``fake-error`` or ``fake-expire`` anywhere in it;
4. otherwise ``"succeed"``.

An ``"error"`` item is an ``errored`` result with a retryable server error; an ``"expire"`` item
makes its batch end ``expired``, with that item ``expired`` (the others succeed), as a batch
whose completion window closed would. A batch ends at once unless the ``polls`` setting asks
for that many non-terminal polls first. Batches live in the provider object (the runner keeps
one per job in the process), so a fresh object, or another process, does not know them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import ProviderError
from ..items import BatchItem, BatchResult, ItemError, Usage
from ..provider_plugin import ProviderPlugin
from ..providers import BatchProvider, BatchStatus, Limits, SubmittedBatch
from ..sandbox.model import SyntheticModel

Outcome = Literal["succeed", "error", "expire"]
OUTCOMES: tuple[Outcome, ...] = ("succeed", "error", "expire")
#: the fake's price file: made-up prices, so cost tables show numbers
PRICES = Path(__file__).with_name("fake_prices.toml")
_MODEL = SyntheticModel()


@dataclass
class _Batch:
    lines: list[dict[str, Any]]
    metadata: dict[str, str]
    polls_left: int
    cancelled: bool = False
    results: list[BatchResult] = field(default_factory=list)


class FakeProvider(BatchProvider):
    """An in-process provider with deterministic replies and scripted outcomes per item."""

    name: ClassVar[str] = "fake"
    credential_env: ClassVar[tuple[str, ...]] = ()
    limits: ClassVar[Limits] = Limits(max_requests=50_000, max_bytes=200 * 1024 * 1024)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
        outcomes: Mapping[str, Outcome] | Callable[[str], Outcome | None] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, settings=settings)
        self.outcomes = outcomes
        for value in dict(self.settings.get("outcomes") or {}).values():
            if value not in OUTCOMES:
                raise ProviderError(f"fake: outcome {value!r} is not one of {', '.join(OUTCOMES)}")
        self.batches: dict[str, _Batch] = {}

    # -- what happens to one item ------------------------------------------------------------
    def outcome(self, custom_id: str) -> Outcome:
        """The scripted outcome of the item ``custom_id`` (see the module docstring)."""
        if callable(self.outcomes):
            chosen = self.outcomes(custom_id)
            if chosen is not None:
                return chosen
        elif self.outcomes is not None and custom_id in self.outcomes:
            return self.outcomes[custom_id]
        scripted = dict(self.settings.get("outcomes") or {})
        if custom_id in scripted:
            return scripted[custom_id]  # type: ignore[no-any-return]
        for marker in ("error", "expire"):
            if f"fake-{marker}" in custom_id:
                return marker
        return "succeed"

    def encode(self, item: BatchItem, model: str) -> bytes:
        """A JSON line holding what the synthetic model reads."""
        fmt = item.response_format or {}
        schema = (
            fmt.get("json_schema", {}).get("schema") if fmt.get("type") == "json_schema" else None
        )
        stop = [item.stop] if isinstance(item.stop, str) else item.stop
        body = {
            "custom_id": item.custom_id,
            "model": item.model or model,
            "messages": [[m.role, m.text] for m in item.messages],
            "max_tokens": item.max_tokens,
            "json_schema": schema,
            "json_object": fmt.get("type") == "json_object",
            "stop": stop,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    # -- the lifecycle -----------------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        data = lines_path.read_bytes()
        lines = [json.loads(line) for line in data.split(b"\n") if line.strip()]
        digest = hashlib.sha256(data + json.dumps(sorted(metadata.items())).encode()).hexdigest()
        batch_id = f"fake-batch-{len(self.batches):04d}-{digest[:12]}"
        polls = int(self.settings.get("polls", 0))
        self.batches[batch_id] = _Batch(lines, dict(metadata), polls)
        return SubmittedBatch(batch_id=batch_id)

    def _batch(self, batch_id: str) -> _Batch:
        try:
            return self.batches[batch_id]
        except KeyError:
            raise ProviderError(f"fake: no batch {batch_id!r} in this provider object") from None

    async def apoll(self, batch_id: str) -> BatchStatus:
        batch = self._batch(batch_id)
        if batch.polls_left > 0 and not batch.cancelled:
            batch.polls_left -= 1
            return BatchStatus(batch_id=batch_id, state="in_progress", total=len(batch.lines))
        if not batch.results:
            batch.results = [self._answer(line, batch_id, batch.cancelled) for line in batch.lines]
        failed = sum(1 for r in batch.results if not r.ok)
        if batch.cancelled:
            state: Any = "cancelled"
        elif any(r.status == "expired" for r in batch.results):
            state = "expired"
        else:
            state = "completed"
        return BatchStatus(
            batch_id=batch_id,
            state=state,
            total=len(batch.lines),
            completed=len(batch.lines) - failed,
            failed=failed,
        )

    def _answer(self, line: dict[str, Any], batch_id: str, cancelled: bool) -> BatchResult:
        custom_id = str(line["custom_id"])
        common: dict[str, Any] = {
            "custom_id": custom_id,
            "model": line["model"],
            "provider": self.name,
            "batch_id": batch_id,
        }
        outcome = self.outcome(custom_id)
        if cancelled:
            error = ItemError(
                code="batch_cancelled", message="the batch was cancelled", retryable=True
            )
            return BatchResult(status="cancelled", error=error, **common)
        if outcome == "error":
            error = ItemError(
                code="server_error", message="fake: scripted error", status_code=500, retryable=True
            )
            return BatchResult(status="errored", error=error, **common)
        if outcome == "expire":
            error = ItemError(code="batch_expired", message="fake: scripted expiry", retryable=True)
            return BatchResult(status="expired", error=error, **common)
        reply = _MODEL.chat(
            model=line["model"],
            messages=[(role, text) for role, text in line["messages"]],
            max_tokens=line.get("max_tokens"),
            json_schema=line.get("json_schema"),
            json_object=bool(line.get("json_object")),
            stop=line.get("stop"),
        )
        usage = Usage(input_tokens=reply.prompt_tokens, output_tokens=reply.completion_tokens)
        return BatchResult(
            status="succeeded",
            text=reply.text,
            finish_reason=reply.finish_reason,
            usage=usage,
            **common,
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        status = await self.apoll(batch_id)
        if not status.terminal:
            raise ProviderError(f"fake: batch {batch_id} has not ended")
        for result in self._batch(batch_id).results:
            yield result

    async def acancel(self, batch_id: str) -> None:
        batch = self._batch(batch_id)
        if not batch.results:
            batch.cancelled = True

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        for batch_id in reversed(self.batches):
            held = self.batches[batch_id].metadata
            if all(held.get(k) == v for k, v in metadata.items()):
                return batch_id
        return None


#: the entry point (``polybatch.testing.fake:plugin``): the fake provider and its made-up prices
plugin = ProviderPlugin(FakeProvider, prices=PRICES)
