"""Planning a job: normalise and validate every item, derive the job id, cut chunks within limits.

Everything is streamed: items go to a staging file one line at a time, ids are checked for
duplicates in an on-disk SQLite table, and only the chunk boundaries are kept in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ItemValidationError, PolybatchError
from ..items import BatchItem, Message, OutputCheck, json_problem
from ..kinds import KIND_FIELDS, LABELS, output_format
from ..pricing.estimate import input_tokens
from ..providers import BatchProvider
from .access import private_dir
from .lease import host, pid_alive

ITEMS_FILE = "items.jsonl"


@dataclass
class PlannedChunk:
    """A contiguous run of items that becomes one provider batch."""

    offset: int  # byte offset of the first item in the items file
    start: int  # index of the first item
    count: int
    nbytes: int  # bytes of the encoded wire lines, newlines included
    model: str
    #: the items' kind (chat, embedding, response ...): a provider batch has one endpoint, so
    #: one kind
    kind: str = "chat"
    #: estimated prompt tokens of its items: what it adds to the provider's queue for the model
    tokens: int = 0


@dataclass
class Plan:
    """The outcome of planning: where the items are, what the job is called, how it is cut."""

    job_id: str
    staging_path: Path
    n_items: int
    chunks: list[PlannedChunk] = field(default_factory=list)
    #: each chunk's encoded wire lines, ready to upload
    wire_files: list[Path] = field(default_factory=list)

    def discard(self) -> None:
        """Delete the staging files (a plan that will not become a job)."""
        self.staging_path.unlink(missing_ok=True)
        for w in self.wire_files:
            w.unlink(missing_ok=True)


class Chunker:
    """Cuts a stream of items into chunks within a provider's limits (greedy, in order).

    A new chunk starts when the current one is full by count or by bytes, or the model or the
    item kind changes (a provider batch holds one model and one endpoint). Embedding chunks are
    also capped by ``limits.max_embedding_inputs`` (one item is one input).
    """

    def __init__(self, provider: BatchProvider, chunk_size: int | None = None) -> None:
        self.provider = provider
        self.max_requests = min(
            provider.limits.max_requests, chunk_size or provider.limits.max_requests
        )
        self.max_bytes = provider.limits.max_bytes
        self.max_embedding_inputs = provider.limits.max_embedding_inputs
        self.chunks: list[PlannedChunk] = []

    def add(
        self,
        *,
        index: int,
        offset: int,
        wire_bytes: int,
        model: str,
        kind: str = "chat",
        tokens: int = 0,
    ) -> bool:
        """Place the item at ``index`` (stored at ``offset``) whose wire line is ``wire_bytes`` long.

        Returns True when the item starts a new chunk.
        """
        started = False
        last = self.chunks[-1] if self.chunks else None
        max_count = self.max_requests
        if kind == "embedding" and self.max_embedding_inputs is not None:
            max_count = min(max_count, self.max_embedding_inputs)
        if (
            last is None
            or last.count >= max_count
            or last.nbytes + wire_bytes > self.max_bytes
            or last.model != model
            or last.kind != kind
        ):
            last = PlannedChunk(
                offset=offset, start=index, count=0, nbytes=0, model=model, kind=kind
            )
            self.chunks.append(last)
            started = True
        last.count += 1
        last.nbytes += wire_bytes
        last.tokens += tokens
        return started


def chunk_items_file(
    path: Path, provider: BatchProvider, model: str, chunk_size: int | None
) -> list[PlannedChunk]:
    """Chunks for an items file that is already normalised and validated (a retry round)."""
    chunker = Chunker(provider, chunk_size)
    offset = 0
    with path.open("rb") as fh:
        for index, line in enumerate(fh):
            item = BatchItem.model_validate_json(line)
            item_model = item.model or model
            wire = len(provider.encode(item, item_model)) + 1
            chunker.add(
                index=index,
                offset=offset,
                wire_bytes=wire,
                model=item_model,
                kind=item.kind,
                tokens=input_tokens(item),
            )
            offset += len(line)
    return chunker.chunks


#: a planning process's staging files: ``plan-<pid>@<host>~<random>.jsonl`` and what is named
#: after it (``.ids.sqlite3``, ``.wire-NNNN.jsonl``); from before 0.3: ``plan-<random>.jsonl``
_STAGING = re.compile(r"^plan-(?:(?P<pid>\d+)@(?P<host>[^~/]+)~)?")
#: staging files of the old naming (no pid) older than this are removed, seconds
OLD_STAGING_SECONDS = 24 * 3600


def staging_prefix() -> str:
    """The name prefix of this process's staging files (its pid and host: see clean_staging)."""
    return f"plan-{os.getpid()}@{host()}~"


def clean_staging(staging_dir: Path) -> list[Path]:
    """Delete staging files left by planning processes that are gone (killed mid-plan); the
    files removed. A file of a live process, or of another host, stays."""
    removed: list[Path] = []
    here = host()
    now = time.time()
    for path in staging_dir.glob("plan-*"):
        m = _STAGING.match(path.name)
        if m is None or not path.is_file():
            continue
        try:
            if m["pid"] is None:
                gone = now - path.stat().st_mtime > OLD_STAGING_SECONDS
            else:
                pid = int(m["pid"])
                gone = m["host"] == here and pid != os.getpid() and not pid_alive(pid)
            if gone:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another process cleaned it meanwhile
            continue
    return removed


def kind_refusal(provider: BatchProvider, item: BatchItem) -> ItemValidationError | None:
    """The error for an item whose kind ``provider`` does not serve (None: it does)."""
    if provider.serves(item.kind):
        return None
    label = LABELS.get(item.kind, item.kind)
    return ItemValidationError(f"{provider.name} does not offer {label} batches", field="kind")


def apply_defaults(
    item: BatchItem, defaults: dict[str, Any], system_prompt: str | None
) -> BatchItem:
    """The item with job-wide defaults filled in where the item sets nothing (item values win).

    Only the defaults the item's kind takes apply (an embedding takes no max_tokens); the system
    prompt becomes a chat item's system turn and a response item's ``instructions``.
    """
    allowed = KIND_FIELDS[item.kind]
    update = {k: v for k, v in defaults.items() if k in allowed and getattr(item, k) is None}
    if item.response_format is not None:
        update.pop("response_model_ref", None)  # the item's own format has its own model (or none)
    if system_prompt and item.kind == "chat":
        if not any(m.role == "system" for m in item.messages):
            update["messages"] = [Message(role="system", content=system_prompt), *item.messages]
    elif system_prompt and item.kind == "response" and item.instructions is None:
        update["instructions"] = system_prompt
    return item.model_copy(update=update) if update else item


def _where(item_origin: tuple[str | None, int | None]) -> dict[str, Any]:
    return {"path": item_origin[0], "line": item_origin[1]}


def plan_job(
    items: Iterable[tuple[BatchItem, tuple[str | None, int | None]]],
    *,
    provider: BatchProvider,
    model: str,
    staging_dir: Path,
    defaults: dict[str, Any] | None = None,
    system_prompt: str | None = None,
    chunk_size: int | None = None,
    identity: dict[str, Any] | None = None,
    observe: Callable[[BatchItem, str], None] | None = None,
) -> Plan:
    """Validate and normalise ``items`` (each with its (file, line) origin) into a staging file.

    Raises InputError naming file, line and field for the first bad item; nothing is submitted.
    ``identity`` holds whatever else makes two jobs different (provider settings, ...).
    The wire lines computed to size the chunks are kept, one file per chunk
    (``Plan.wire_files``), so submitting does not encode everything again; ``observe`` sees
    every normalised item with its model (the cost estimate is made in the same pass).
    """
    limits = provider.limits
    problem = json_problem(system_prompt)
    if problem is not None:
        raise InputError(problem[1], field="system_prompt")
    chunker = Chunker(provider, chunk_size)
    private_dir(staging_dir)
    clean_staging(staging_dir)
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(), suffix=".jsonl", dir=staging_dir)
    staging = Path(tmp)
    ids_db_path = staging.with_suffix(".ids.sqlite3")
    os.close(os.open(ids_db_path, os.O_CREAT | os.O_WRONLY, 0o600))  # before sqlite makes it 0644
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {"provider": provider.name, "model": model, **(identity or {})}, sort_keys=True
        ).encode()
    )
    n = 0
    offset = 0
    wire_files: list[Path] = []
    wire_out = None
    ids = sqlite3.connect(ids_db_path)
    try:
        ids.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, line TEXT) WITHOUT ROWID")
        ids.execute("BEGIN")
        with os.fdopen(fd, "wb") as out:
            for item, origin in items:
                n += 1
                if item.custom_id is None:
                    item = item.model_copy(update={"custom_id": f"item-{n}"})
                item = apply_defaults(item, defaults or {}, system_prompt)
                cid = item.custom_id
                assert cid is not None
                line_label = f"{origin[0]}:{origin[1]}" if origin[0] else str(n)
                try:
                    ids.execute("INSERT INTO ids VALUES (?, ?)", (cid, line_label))
                except sqlite3.IntegrityError:
                    first = ids.execute("SELECT line FROM ids WHERE id = ?", (cid,)).fetchone()[0]
                    raise InputError(
                        f"duplicate custom_id {cid!r} (first used at {first})",
                        field="custom_id",
                        **_where(origin),
                    ) from None
                item_model = item.model or model
                refused = kind_refusal(provider, item)
                try:
                    if refused is not None and item.kind != "embedding":
                        raise refused  # before the adapter's checks: they know chat requests
                    provider.validate_item(item, item_model)
                except ItemValidationError as exc:
                    # name the item once, whether or not the adapter's message already does
                    named = f"item {cid!r}"
                    reason = exc.reason if named in exc.reason else f"{named}: {exc.reason}"
                    raise ItemValidationError(reason, field=exc.field, **_where(origin)) from None
                if refused is not None:
                    # after validate_item, whose reason may say more; this catches adapters that
                    # never look at kind (they would encode an empty chat request)
                    raise ItemValidationError(
                        f"item {cid!r}: {refused.reason}", field="kind", **_where(origin)
                    )
                try:
                    encoded = provider.encode(item, item_model)
                except ValueError as exc:
                    if isinstance(exc, PolybatchError):
                        raise
                    # the adapter (or code of the SDK it calls) refuses the request locally: a
                    # retry would not change that, so it is this item's error, before any upload
                    raise ItemValidationError(
                        f"item {cid!r} cannot be encoded for {provider.name}: {exc}",
                        **_where(origin),
                    ) from None
                wire = len(encoded) + 1
                if wire > limits.max_bytes:
                    raise InputError(
                        f"item {cid!r} encodes to {wire} bytes, over the {provider.name} limit of "
                        f"{limits.max_bytes} bytes per batch",
                        field="messages",
                        **_where(origin),
                    )
                line = (
                    item.model_dump_json(exclude_none=True, exclude_defaults=True).encode() + b"\n"
                )
                digest.update(line)
                if observe is not None:
                    observe(item, item_model)
                if chunker.add(
                    index=n - 1,
                    offset=offset,
                    wire_bytes=wire,
                    model=item_model,
                    kind=item.kind,
                    tokens=input_tokens(item),
                ):
                    if wire_out is not None:
                        wire_out.close()
                    wire_files.append(staging.with_suffix(f".wire-{len(wire_files):04d}.jsonl"))
                    # wire lines hold every prompt: owner-only, like the items file
                    wire_out = os.fdopen(
                        os.open(wire_files[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"
                    )
                assert wire_out is not None
                wire_out.write(encoded + b"\n")
                out.write(line)
                offset += len(line)
        ids.execute("COMMIT")
    except BaseException:
        staging.unlink(missing_ok=True)
        for w in wire_files:
            w.unlink(missing_ok=True)
        raise
    finally:
        if wire_out is not None:
            wire_out.close()
        ids.close()
        ids_db_path.unlink(missing_ok=True)
    if n == 0:
        staging.unlink(missing_ok=True)
        raise InputError("no requests to submit")
    plan = Plan(
        job_id="pb-" + digest.hexdigest()[:16],
        staging_path=staging,
        n_items=n,
        chunks=chunker.chunks,
        wire_files=wire_files,
    )
    try:
        check_minimum(plan.chunks, provider)
    except InputError:
        plan.discard()
        raise
    return plan


def check_minimum(chunks: list[PlannedChunk], provider: BatchProvider) -> None:
    """Refuse (InputError) a plan with a batch smaller than ``provider.limits.min_requests``:
    the job is not padded with filler requests, which the provider would bill."""
    minimum = provider.limits.min_requests
    short = [c for c in chunks if c.count < minimum]
    if not short:
        return
    total = sum(c.count for c in chunks)
    if len(chunks) == 1:
        where = f"this job has {total} request(s)"
        fix = f"send at least {minimum} requests"
    else:
        where = f"batch {chunks.index(short[0]) + 1} of {len(chunks)} would hold {short[0].count}"
        fix = "choose a chunk size that leaves every batch at least that many requests"
    raise InputError(
        f"{provider.name} needs at least {minimum} requests per batch job, but {where}; "
        f"{fix}, or use a provider without a minimum (see 'polybatch providers'). "
        "polybatch never pads a job with filler requests: they would be billed"
    )


def iter_chunk_items(path: Path, offset: int, count: int) -> Iterator[BatchItem]:
    """Stream the ``count`` items stored at ``offset`` of an items file."""
    with path.open("rb") as fh:
        fh.seek(offset)
        for _ in range(count):
            yield BatchItem.model_validate_json(fh.readline())


def iter_chunk_checks(
    path: Path, offset: int, count: int
) -> Iterator[tuple[str, OutputCheck | None]]:
    """A chunk's custom_ids, each with how to check its reply (plain JSON parsing, as for ids)."""
    with path.open("rb") as fh:
        fh.seek(offset)
        for _ in range(count):
            obj = json.loads(fh.readline())
            check = OutputCheck.for_format(output_format(obj), obj.get("response_model_ref"))
            yield str(obj["custom_id"]), check
