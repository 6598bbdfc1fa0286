"""Price shopping: what the same items would cost on several providers, before anything is sent.

:func:`estimate` plans the items for each ``provider:model`` (or profile) exactly as a job would
(defaults applied, each item checked by the provider, chunks cut within its limits) and
estimates the batch and the synchronous (standard) cost range, without credentials and without
submitting anything. Items a provider cannot express are listed with the reason instead of
failing the comparison::

    rows = polybatch.estimate(items, models=["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
    for row in rows:  # cheapest first
        print(row.spec, row.batch.high if row.batch else "unpriced", row.refused)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import config as _config
from .config import JobLimits, RequestDefaults
from .errors import InputError, ItemValidationError, PricingError
from .inputs import coerce_items, read_items
from .items import BatchItem
from .jobs.clients import make_provider
from .jobs.planner import Chunker, apply_defaults, check_minimum, kind_refusal
from .pricing import Estimate, PriceRegistry, estimator, price_registry

ItemsLike = Iterable[BatchItem | dict[str, Any] | str] | str | Path


@dataclass(frozen=True)
class Refusal:
    """An item a provider would refuse, and why (nothing was sent: the provider's own check)."""

    custom_id: str
    reason: str
    field: str | None = None


@dataclass
class Comparison:
    """One provider and model of a comparison: requests, chunks, cost ranges and refusals.

    ``batch`` is None when the model has no batch price (``unpriced`` says why), ``standard``
    when it has no standard price; costs cover the accepted items only.
    """

    provider: str
    model: str
    requests: int = 0
    chunks: int = 0
    batch: Estimate | None = None
    standard: Estimate | None = None
    refused: list[Refusal] = field(default_factory=list)
    unpriced: str | None = None
    profile: str | None = None
    #: the budget this provider's job would have (``max_cost``), if any
    max_cost: Decimal | None = None
    #: why the provider would refuse the job as a whole (a batch below its minimum size), if so
    blocked: str | None = None

    @property
    def over_budget(self) -> bool:
        """Whether a job would be refused by its ``max_cost`` (unpriced counts as over)."""
        if self.max_cost is None:
            return False
        return self.batch is None or self.batch.high > self.max_cost

    @property
    def spec(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"

    @property
    def saving(self) -> tuple[Decimal, Decimal] | None:
        """What batching saves over synchronous requests: (at the low ends, at the high ends)."""
        if self.batch is None or self.standard is None:
            return None
        return (self.standard.low - self.batch.low, self.standard.high - self.batch.high)

    @property
    def currency(self) -> str | None:
        """The currency of the estimates (None when unpriced)."""
        return self.batch.currency if self.batch is not None else None


def _sort_key(row: Comparison) -> tuple[int, Decimal, Decimal, str]:
    # priced and submittable first, cheapest first; then jobs the provider would refuse; unpriced last
    if row.batch is None:
        return (2, Decimal(0), Decimal(0), row.spec)
    return (1 if row.blocked else 0, row.batch.high, row.batch.low, row.spec)


def estimate(
    items: ItemsLike,
    models: Sequence[str],
    *,
    defaults: RequestDefaults | None = None,
    limits: JobLimits | None = None,
    on: date | None = None,
    registry: PriceRegistry | None = None,
    **request_fields: Any,
) -> list[Comparison]:
    """Cost ranges of ``items`` on each of ``models``, cheapest (batch high end) first.

    ``models`` are ``"provider:model"`` strings or profile names from polybatch.toml (the
    profile's model, defaults and provider settings apply). ``defaults`` (a
    :class:`~polybatch.config.RequestDefaults`) or ``request_fields`` (``max_tokens=256``,
    ``system_prompt=...``) are request fields items lack, as for :func:`submit`; ``limits``
    (``chunk_size``, ``max_cost``) as a job would have them. A row whose batch high end is above
    ``max_cost`` says so in ``over_budget``; nothing is refused.
    ``items`` is a JSONL path (streamed again for each model, so a large file is never held in
    memory) or an iterable of items, dicts or prompt strings (kept in a list).
    Unpriced models come last with ``unpriced`` set. Nothing is submitted; no key is needed.
    """
    if not models:
        raise ValueError("estimate() needs at least one model to compare")
    if isinstance(items, str | Path):
        path = items

        def stream() -> Iterable[BatchItem]:
            return read_items(path)
    else:
        listed = list(coerce_items(items))

        def stream() -> Iterable[BatchItem]:
            return listed

    rows = [
        _compare_one(stream(), spec, on, registry, defaults, limits, request_fields)
        for spec in models
    ]
    return sorted(rows, key=_sort_key)


def _compare_one(
    items: Iterable[BatchItem],
    spec: str,
    on: date | None,
    registry: PriceRegistry | None,
    defaults: RequestDefaults | None,
    limits: JobLimits | None,
    fields: dict[str, Any],
) -> Comparison:
    if ":" in spec:
        resolved = _config.resolve(model=spec, defaults=defaults, limits=limits, **fields)
    else:
        resolved = _config.resolve(profile=spec, defaults=defaults, limits=limits, **fields)
    provider = make_provider(resolved.provider, resolved.provider_settings)  # no key needed
    row = Comparison(resolved.provider, resolved.model, profile=None if ":" in spec else spec)
    reg = registry or price_registry(providers=[provider.name])
    batch = estimator(provider, registry=reg, on=on)
    standard = estimator(provider, registry=reg, on=on, mode="standard")
    chunker = Chunker(provider, resolved.chunk_size)
    problems: dict[str, str] = {}  # mode -> why it has no price
    for n, item in enumerate(items, start=1):
        if item.custom_id is None:
            item = item.model_copy(update={"custom_id": f"item-{n}"})
        item = apply_defaults(item, resolved.defaults, resolved.system_prompt)
        cid = item.custom_id or f"item-{n}"
        model = item.model or resolved.model
        try:
            refused = kind_refusal(provider, item)
            if refused is not None and item.kind != "embedding":
                raise refused  # before the adapter's checks: they know chat requests
            provider.validate_item(item, model)
            if refused is not None:
                raise refused
            wire = len(provider.encode(item, model)) + 1
        except ItemValidationError as exc:
            reason = exc.reason.removeprefix(f"item {cid!r}: ")
            row.refused.append(Refusal(cid, reason, exc.field))
            continue
        if wire > provider.limits.max_bytes:
            row.refused.append(
                Refusal(
                    cid,
                    f"encodes to {wire} bytes, over the limit of "
                    f"{provider.limits.max_bytes} bytes per batch",
                    "messages",
                )
            )
            continue
        chunker.add(index=n - 1, offset=0, wire_bytes=wire, model=model, kind=item.kind)
        row.requests += 1
        for mode, est in (("batch", batch), ("standard", standard)):
            if mode not in problems:
                try:
                    est.add(item, model)
                except PricingError as exc:
                    problems[mode] = str(exc)
    row.chunks = len(chunker.chunks)
    try:
        check_minimum(chunker.chunks, provider)
    except InputError as exc:
        row.blocked = exc.reason
    row.max_cost = resolved.max_cost
    row.unpriced = problems.get("batch")
    if row.requests and "batch" not in problems:
        row.batch = batch.result()
    if row.requests and "standard" not in problems:
        row.standard = standard.result()
    return row
