"""OpenAI-compatible batch APIs, their differences configured as data (a :class:`Preset`).

Many vendors serve OpenAI's Files + Batches API with small differences: the upload ``purpose``,
input lines without ``method``/``url``, their own (uppercase) status words, a 0-100 ``progress``,
an ``Idempotency-Key`` header, create fields they refuse, a create answer wrapped in an envelope,
their limits and completion windows. A :class:`Preset` holds these; :func:`compatible_provider`
makes a provider class of one, and the sandbox's
:class:`~polybatch_openai.sandbox.CompatibleApi` serves the same differences, so each preset runs
through the real openai SDK on the sandbox.

:data:`PRESETS` holds the vendors whose batch APIs are documented as OpenAI-compatible. ``groq`` and
``together`` are registered as providers; any other is one table in ``polybatch.toml``::

    [providers.nebius]
    kind = "openai-compatible"
    preset = "nebius"                 # its base URL, key variable, limits ...

and a vendor without a preset is the same table with the fields spelled out::

    [providers.mylab]
    kind = "openai-compatible"
    base_url = "https://llm.mylab.example/v1"
    api_key_env = "MYLAB_API_KEY"
    max_requests = 50000              # per batch (default: OpenAI's 50,000)
    max_bytes = 209715200             # per batch file (default: OpenAI's 200 MB)
    completion_windows = ["24h"]      # what the endpoint accepts (default: ["24h"])
    completion_window = "24h"         # what polybatch asks for (default: the first one)
    purpose = "batch"                 # the upload purpose
    line_fields = "openai"            # "body": lines are {custom_id, body} only
    statuses = { completed = "DONE" } # neutral state -> the vendor's word, over OpenAI's
    progress_field = "progress"       # a 0-100 progress, read when there are no counts
    idempotency_header = "Idempotency-Key"  # only where the vendor honours it
    omit = ["metadata"]               # batch-create fields the vendor refuses
    batch_envelope = "job"            # the create answer wraps the batch under this key

then ``--model mylab:some-model``. Prices for it go in the config's ``[prices]`` table.
See docs/providers/openai-compatible.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polybatch import formats
from polybatch.errors import ConfigError, ProviderError
from polybatch.items import BatchItem
from polybatch.providers import (
    META_CHUNK,
    META_JOB,
    TERMINAL_STATES,
    BatchState,
    BatchStatus,
    RecentBatch,
    SubmittedBatch,
)
from polybatch.wire import short_hash

from . import codec, listing
from .provider import OpenAILimits, OpenAIProvider, _retry_after

log = logging.getLogger("polybatch")

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

KIND = "openai-compatible"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: provider settings that are not the preset's (they go to the SDK client and the runner)
_SETTINGS = {"max_retries", "timeout", "organization", "project", "default_max_tokens"}


class Preset(BaseModel):
    """How one vendor's OpenAI-style batch API differs from OpenAI's: data, no code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(min_length=1)
    #: the variable holding the key
    api_key_env: str = Field(min_length=1)
    #: the variable holding a base URL (None: ``<NAME>_BASE_URL``)
    base_url_env: str | None = None
    #: the ``purpose`` of the uploaded input file
    purpose: str = "batch"
    #: ``"openai"``: lines ``{custom_id, method, url, body}``; ``"body"``: ``{custom_id, body}``
    line_fields: Literal["openai", "body"] = "openai"
    #: neutral state -> the vendor's status word, over OpenAI's own words (read backwards by the
    #: adapter: of states sharing a word, the earliest in the neutral lifecycle wins)
    statuses: dict[BatchState, str] = {}
    #: a 0-100 completion field, read when the batch has no ``request_counts``
    progress_field: str | None = None
    #: a header carrying a key per job and chunk: a create retried with it cannot make a
    #: second batch, so the SDK may retry it (set only where the vendor honours it)
    idempotency_header: str | None = None
    #: batch-create fields the vendor refuses (``metadata``: then batches cannot be found again)
    omit: frozenset[Literal["metadata", "output_expires_after"]] = frozenset()
    #: the create answer holds the batch under this key (Together: ``{"job": ..., "warning"}``)
    batch_envelope: str | None = None
    #: the batch ``endpoint`` and line ``url`` of chat batches
    endpoint: str = codec.CHAT_URL
    max_requests: int = Field(50_000, ge=1)
    max_bytes: int = Field(200 * 1024 * 1024, ge=1)
    completion_windows: tuple[str, ...] = Field(("24h",), min_length=1)
    #: the window polybatch asks for (None: the first of ``completion_windows``)
    completion_window: str | None = None

    def limits(self) -> OpenAILimits:
        """The planner's limits for one batch."""
        return OpenAILimits(
            max_requests=self.max_requests,
            max_bytes=self.max_bytes,
            completion_windows=self.completion_windows,
        )

    def status_words(self) -> dict[str, str]:
        """Neutral state -> the vendor's word, for every state."""
        return {state: self.statuses.get(state, state) for state in codec.STATES.values()}

    def states(self) -> dict[str, BatchState]:
        """The vendor's word -> neutral state (of states sharing a word, the earliest wins)."""
        words = self.status_words()
        return {word: cast(BatchState, s) for s, word in reversed(list(words.items()))}


_UPPER: dict[BatchState, str] = {state: state.upper() for state in codec.STATES.values()}

#: the vendors whose batch APIs are documented as OpenAI-compatible. Facts from the 2026-12 survey
#: of provider batch APIs, tagged as it tags them: [src] read in the vendor's SDK, [docs] the
#: vendor's documentation, [inferred] secondary sources. Base URLs and key variables outside
#: Together's are the vendors' usual OpenAI-compatible addresses [inferred: not in the survey, not
#: checked against a live endpoint]; override them in config (``base_url``) if they moved.
PRESETS: dict[str, Preset] = {
    # [docs] groq: windows 24h to 7d; per-batch limits undocumented (OpenAI's commonly cited)
    "groq": Preset(
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        completion_windows=("24h", "48h", "72h", "7d"),
    ),
    # [src together 3.1.1] purpose "batch-api" (FilePurpose), statuses VALIDATING IN_PROGRESS
    # COMPLETED FAILED EXPIRED CANCELLED, progress 0-100, create answers {job, warning}, create
    # takes no metadata; [docs] lines {custom_id, body}, 50,000 requests, 100 MB per file
    "together": Preset(
        base_url="https://api.together.xyz/v1",
        api_key_env="TOGETHER_API_KEY",
        purpose="batch-api",
        line_fields="body",
        statuses={**_UPPER, "finalizing": "IN_PROGRESS", "cancelling": "IN_PROGRESS"},
        progress_field="progress",
        omit=frozenset({"metadata"}),
        batch_envelope="job",
        max_requests=50_000,
        max_bytes=100 * 1024 * 1024,
    ),
    # [docs] Perplexity /v1/batches: honours Idempotency-Key; output_expires_after is a 400
    "perplexity": Preset(
        base_url="https://api.perplexity.ai/v1",
        api_key_env="PERPLEXITY_API_KEY",
        idempotency_header="Idempotency-Key",
        omit=frozenset({"output_expires_after"}),
    ),
    # [docs] Novita /openai/v1/batches, lines {custom_id, body}; limits unverified
    "novita": Preset(
        base_url="https://api.novita.ai/openai/v1",
        api_key_env="NOVITA_API_KEY",
        line_fields="body",
    ),
    # [docs] Nebius AI Studio: OpenAI's Files + Batches, 50%; limits unverified
    "nebius": Preset(base_url="https://api.studio.nebius.com/v1", api_key_env="NEBIUS_API_KEY"),
    # [docs] Alibaba Model Studio (Qwen): OpenAI-compatible Files + Batches; limits unverified
    "alibaba": Preset(
        base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        api_key_env="DASHSCOPE_API_KEY",
    ),
    # [docs] Doubleword: OpenAI-compatible; its partial results (X-Incomplete) are not read here
    "doubleword": Preset(base_url="https://api.doubleword.ai/v1", api_key_env="DOUBLEWORD_API_KEY"),
    # [docs] Gemini's OpenAI compatibility (2025-09 blog): files + batches through the openai SDK
    "gemini-openai": Preset(
        base_url="https://generativelanguage.googleapis.com/v1beta/openai",
        api_key_env="GEMINI_API_KEY",
        base_url_env="GEMINI_OPENAI_BASE_URL",
    ),
}
#: the presets registered as providers without any config (the others: ``preset = "NAME"``)
REGISTERED = ("groq", "together")


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-style batch API at another address, its differences in :attr:`preset`.

    A subclass that sets ``preset`` (and ``name``) gets its key variable, limits, base URL and
    base-URL variable from it; override a method for a quirk no preset field covers.
    """

    #: no batch webhooks from this API
    webhook_secret_env: ClassVar[str | None] = None

    #: the vendor's differences (each subclass sets its own; this base's is Groq's)
    preset: ClassVar[Preset] = PRESETS["groq"]
    #: its own base-URL variable (``<NAME>_BASE_URL``); OPENAI_BASE_URL belongs to OpenAI
    base_url_env: ClassVar[str | None] = None
    #: chat (and embeddings, as before): OpenAI's other batch endpoints are OpenAI's own
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "embedding"})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "preset" in vars(cls) and "name" in vars(cls):
            p = cls.preset
            cls.credential_env = (p.api_key_env,)
            cls.limits = p.limits()
            cls.default_base_url = p.base_url
            cls.base_url_env = p.base_url_env or f"{cls.name.upper().replace('-', '_')}_BASE_URL"
            cls.endpoint = cls.line_url = p.endpoint
            cls.sandbox_prefix = vars(cls).get("sandbox_prefix", f"/compat/{cls.name}")
        super().__init_subclass__(**kwargs)

    def window(self) -> str:
        """The completion window asked for: the setting, the preset's, else "" (the first)."""
        return str(self.settings.get("completion_window") or self.preset.completion_window or "")

    def requested_window(self) -> str | None:
        """The setting's window, else the preset's (the base's preflight checks it)."""
        return self.window() or None

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One input line, with or without ``method``/``url`` as the preset says."""
        if self.preset.line_fields == "openai":
            return super().encode(item, model)
        cid = item.custom_id
        return formats.encode_line(
            item,
            codec.encode_body(item, model),
            custom_id=self.wire_custom_id(cid) if cid else None,
        )

    def idempotency_key(self, lines_path: Path, metadata: Mapping[str, str]) -> str | None:
        """The key of one chunk's create: the same job, chunk and file size give the same key
        (a retry round's chunks have numbers of their own, so they never share one)."""
        if META_JOB not in metadata:
            return None  # not the runner's: no job and chunk to derive it from
        size = lines_path.stat().st_size
        return "polybatch-" + short_hash(metadata[META_JOB], metadata.get(META_CHUNK, ""), size)

    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload with the preset's purpose; create with its headers, fields and envelope."""
        p, client = self.preset, self.client
        with self.sdk_errors("uploading the batch file"), lines_path.open("rb") as fh:
            uploaded = await client.files.create(
                file=(self.upload_name(lines_path, metadata), fh, "application/jsonl"),
                purpose=cast(Any, p.purpose),
                **self.upload_options(),
            )
        fields: dict[str, Any] = {"metadata": dict(metadata) or None, **self.batch_options()}
        for name in p.omit:
            fields.pop(name, None)
        key = self.idempotency_key(lines_path, metadata) if p.idempotency_header else None
        # a create is retried by the SDK only under an idempotency key the vendor honours: any
        # other retry after a lost answer makes a second batch (the runner looks it up instead)
        retries = int(self.settings.get("max_retries", 2)) if key else 0
        create = client.with_options(max_retries=retries).batches.with_raw_response.create
        headers = {p.idempotency_header: key} if p.idempotency_header and key else None
        try:
            with self.sdk_errors("creating the batch"):
                raw = await create(
                    input_file_id=uploaded.id,
                    endpoint=cast(Any, self.endpoint_for(lines_path)),
                    completion_window=cast(Any, self.window() or self.limits.completion_windows[0]),
                    extra_headers=headers,
                    **fields,
                )
                data = raw.http_response.json()
        except ProviderError as exc:
            await self.drop_refused_upload(exc, uploaded.id)
            raise
        batch = data.get(p.batch_envelope) if p.batch_envelope else data
        if not isinstance(batch, dict) or not isinstance(batch.get("id"), str):
            raise ProviderError(f"creating the batch: no batch id in {data!r}", provider=self.name)
        return SubmittedBatch(batch_id=batch["id"], input_file_id=uploaded.id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        """OpenAI's status, read through the preset's words (and its progress, if no counts)."""
        with self.sdk_errors(f"polling batch {batch_id}"):
            raw = await self.client.batches.with_raw_response.retrieve(batch_id)
            batch = raw.parse()
        return self.status_of(batch, _retry_after(raw.headers.get("retry-after")))

    def status_of(self, batch: openai.types.Batch, retry_after: float | None = None) -> BatchStatus:
        """A batch object in neutral terms; without counts, a progress reads as percent done."""
        status = self._status(batch, retry_after=retry_after)
        update: dict[str, Any] = {"state": self.batch_state(batch.status)}
        progress = getattr(batch, self.preset.progress_field or "", None)
        if batch.request_counts is None and isinstance(progress, int | float):
            update.update(total=100, completed=round(progress))
        if update["state"] == "failed" and not batch.errors:
            reason = getattr(batch, "error", None)  # Together's one string
            update["message"] = str(reason) if reason else status.message or "batch failed"
        return status.model_copy(update=update)

    def batch_state(self, status: str) -> BatchState:
        """The preset's word in neutral terms (a word newer than the table reads as in progress)."""
        return self.preset.states().get(status, "in_progress")

    def upload_name(self, lines_path: Path, metadata: Mapping[str, str]) -> str:
        """Where the vendor keeps no metadata, the upload's name carries the job and chunk."""
        default = f"{lines_path.stem}.jsonl"
        return listing.upload_name(metadata, default) if "metadata" in self.preset.omit else default

    async def alist_batches_since(self, since: float) -> list[RecentBatch] | None:
        """Where the vendor keeps no metadata: its batches since ``since``, each with the job
        and chunk its upload's name carries (:mod:`.listing`); else None (found by metadata)."""
        if "metadata" not in self.preset.omit:
            return None
        words = self.preset.states()
        ended = frozenset(w for w, st in words.items() if st in TERMINAL_STATES)
        try:
            with self.sdk_errors("listing batches"):
                return await listing.batches_since(self.client, since, ended)
        except ProviderError as exc:
            if exc.retryable:
                raise  # the runner looks again on its next step
            # a vendor whose listing is not what the preset expects (unverified for some):
            # nothing to adopt by, so the runner resubmits and warns that it may pay twice
            log.warning("%s: cannot list batches to find a lost one: %s", self.name, exc)
            return None

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """By metadata, where the vendor keeps it (else None: nothing to find a batch by)."""
        if "metadata" in self.preset.omit:
            return None
        return await super().afind_batch(metadata)

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The OpenAI routes with this preset's differences, over this provider's own store."""
        from .sandbox import CompatibleApi

        return CompatibleApi(engine, cls.name, cls.preset).routes()


def compatible_provider(name: str, settings: Mapping[str, Any]) -> type[OpenAICompatibleProvider]:
    """A provider class for an OpenAI-compatible batch API: ``settings`` are a preset's fields,
    over the preset they name with ``preset = "NAME"`` (if any), plus provider settings."""
    where = f"providers.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a provider name is lowercase letters, digits, '-' or '_'")
    fields = {k: v for k, v in settings.items() if k not in _SETTINGS}
    base: dict[str, Any] = {}
    preset_name = fields.pop("preset", None)
    if preset_name is not None:
        if preset_name not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            raise ConfigError(
                f"key '{where}.preset': unknown preset {preset_name!r}; presets: {known}"
            )
        base = PRESETS[preset_name].model_dump(exclude_unset=True)
    unknown = set(fields) - set(Preset.model_fields)
    if unknown:
        raise ConfigError(f"key '{where}.{sorted(unknown)[0]}': unknown for kind {KIND!r}")
    if isinstance(fields.get("completion_windows"), list):
        fields["completion_windows"] = tuple(fields["completion_windows"])
    try:
        preset = Preset(**{**base, **fields})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"][:1])
        problem = "required" if error["type"] == "missing" else error["msg"]
        raise ConfigError(f"key '{where}.{key}': {problem} (kind {KIND!r})") from None
    return preset_provider(name, preset)


def preset_provider(name: str, preset: Preset) -> type[OpenAICompatibleProvider]:
    """The provider class of ``preset`` under ``name``."""
    cls = type(
        f"OpenAICompatible_{name.replace('-', '_')}",
        (OpenAICompatibleProvider,),
        {
            "name": name,
            "preset": preset,
            "__doc__": f"The OpenAI-compatible batch API at {preset.base_url}.",
        },
    )
    return cast(type[OpenAICompatibleProvider], cls)


#: Groq: OpenAI's wire format at api.groq.com, with completion windows from 24 hours to 7 days.
GroqProvider = preset_provider("groq", PRESETS["groq"])
GroqProvider.__doc__ = "Groq's batch API (OpenAI-compatible): windows from 24h to 7d."
#: Together: upload purpose ``batch-api``, uppercase states, a 0-100 progress.
TogetherProvider = preset_provider("together", PRESETS["together"])
TogetherProvider.__doc__ = (
    "Together's batch API (OpenAI-style): purpose batch-api, uppercase states."
)
