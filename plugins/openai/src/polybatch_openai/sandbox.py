"""The emulated OpenAI Files and Batches API, on top of the shared SandboxEngine.

Mounted by the sandbox server at ``/openai``; clients use ``base_url={server}/openai/v1``. The batch
lifecycle comes from the engine's clock; this module only translates it to OpenAI's wire shapes and
answers each request with the engine's SyntheticModel. Per-request problems (bad parameters, injected
faults) become error-file lines; whole-file problems fail the batch with ``errors.data``.

A batch's ``endpoint`` decides how its lines are answered: ``/v1/embeddings`` lines get vectors from
``SyntheticModel.embed`` (at most 50,000 inputs per batch), ``/v1/responses``, ``/v1/completions``
and ``/v1/moderations`` lines are answered by :mod:`.endpoints_sandbox`, anything else is taken as
chat completions. Structured-output requests get schema-valid JSON, or broken JSON when the
``invalid_json_rate`` fault strikes.

:class:`OpenAIApi` is the one OpenAI-style batch API: Azure (:mod:`.azure_sandbox`) and every
OpenAI-compatible provider serve it with their own paths, namespace and quirks; for the latter,
:class:`CompatibleApi` serves a :class:`~polybatch_openai.compatible.Preset`'s differences (upload
purpose, line shape, status words, progress, refused fields, create envelope, Idempotency-Key).
The Files routes are the core's :class:`~polybatch.sandbox.files_api.FilesApi`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.api import (
    BatchRequest,
    Outcome,
    RouteKind,
    cursor_list,
    cursor_page,
    refusal,
)
from polybatch.sandbox.engine import DAY, SandboxBatch, SandboxEngine
from polybatch.sandbox.files_api import FilesApi
from polybatch.sandbox.model import SYNTHETIC_MODELS
from polybatch.sandbox.queue import TOKEN_LIMIT_EXCEEDED

from . import codec, endpoints_sandbox, webhook_sandbox
from .sandbox_refusals import model_refusal, window_refusal

if TYPE_CHECKING:
    from .compatible import Preset

NAMESPACE = "openai"
MAX_REQUESTS = 50_000
#: embedding inputs per batch, all requests together (a module global: tests lower it)
MAX_EMBEDDING_INPUTS = codec.MAX_EMBEDDING_INPUTS
MAX_BATCH_FILE_BYTES = 200 * 1024 * 1024
#: batch-level validation stops collecting after this many line errors (as real validators do)
MAX_REPORTED_ERRORS = 100
UPLOAD_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
EXPIRY_RANGE = (3600, 30 * DAY)
BATCH_FILE_EXPIRY = 30 * DAY
MODELS_CREATED = 1_700_000_000
#: model families that bill cache writes (priced ``cache_write_5m``) and report
#: ``prompt_tokens_details.cache_write_tokens``; others cache for free and report reads only
CACHE_WRITE_FAMILIES = ("gpt-6", "gpt-5.6")


def check_request_body(body: Mapping[str, Any], endpoint: str = codec.CHAT_URL) -> str | None:
    """Why a request line's ``body`` would be refused (its error line's message), or None: the
    codec's :func:`~polybatch_openai.codec.check_body`, the rules the adapter validates with."""
    return refusal(lambda: codec.check_body(body, url=endpoint), codec.WireError)


class OpenAIApi(FilesApi):
    """OpenAI's Files, Batches and Models routes over one engine."""

    namespace = NAMESPACE
    upload_purposes = UPLOAD_PURPOSES
    #: per-API limits (Azure's routes subclass this with their own)
    max_requests: int = MAX_REQUESTS
    expiry_range: tuple[int, int] = EXPIRY_RANGE
    #: where the Batches and Models routes live (Azure moves them)
    api_base: str = "/v1"
    #: the purpose of batch input files, and their size limit
    batch_purpose: str = "batch"
    max_file_bytes: int = MAX_BATCH_FILE_BYTES
    #: whether input lines may leave out ``method`` and ``url`` (``{custom_id, body}``)
    lenient_lines: bool = False
    #: the completion windows a create may ask for (others: 400, see .sandbox_refusals)
    completion_windows: tuple[str, ...] = ("24h",)

    def __init__(self, engine: SandboxEngine, namespace: str = NAMESPACE) -> None:
        super().__init__(engine, namespace)
        self.files_path = self.api_base + "/files"

    # -- plumbing --------------------------------------------------------------------------
    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        """OpenAI's ``{"error": {message, type, param, code}}`` (type defaults to
        ``invalid_request_error``)."""
        return codec.error_body(message, **{"type": "invalid_request_error", **detail})

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"No such {what}: '{ident}'", code=None, param="id")

    def refuse_cancel(self, batch: SandboxBatch) -> Response | None:
        """OpenAI answers a cancel of an ended batch with 409 (the status code is OpenAI's and
        the openai SDK's ConflictError; the message wording is UNVERIFIED, taken from user
        reports)."""
        word = self.status_word(batch.state(self.now()))
        return self.error(
            409, f"Cannot cancel a batch with status '{word}'.", code=None, param=None
        )

    def denied(self, request: Request, presented: str | None) -> Response:
        message = (
            "Incorrect API key provided."
            if presented
            else "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
        )
        return self.error(401, message, code="invalid_api_key")

    # -- files -----------------------------------------------------------------------------
    def upload_expiry(self, form: FormData, purpose: str) -> int | Response | None:
        anchor = form.get("expires_after[anchor]")
        seconds_raw = form.get("expires_after[seconds]")
        if anchor is None and seconds_raw is None:
            return BATCH_FILE_EXPIRY if purpose == self.batch_purpose else None
        try:
            seconds = int(str(seconds_raw))
        except ValueError:
            seconds = -1
        lo, hi = self.expiry_range
        if anchor != "created_at" or not lo <= seconds <= hi:
            return self.error(
                400,
                "Invalid 'expires_after': anchor must be 'created_at' and seconds "
                f"between {lo} and {hi}.",
                param="expires_after",
                code="invalid_value",
            )
        return seconds

    def check_upload(self, purpose: str, filename: str, data: bytes) -> Response | None:
        if purpose == self.batch_purpose and not filename.endswith(".jsonl"):
            return self.error(400, "Batch input files must be .jsonl files.", param="file")
        if purpose == self.batch_purpose and len(data) > self.max_file_bytes:
            return self.error(
                400,
                f"Batch input files may hold at most {self.max_file_bytes // 2**20} MB.",
                param="file",
                code="file_too_large",
            )
        return None

    # -- batches: creation -----------------------------------------------------------------
    async def create_batch(self, request: Request) -> Response:
        try:
            params = await request.json()
        except ValueError:
            return self.error(400, "We could not parse the JSON body of your request.")
        if not isinstance(params, dict):
            return self.error(400, "The request body must be a JSON object.")
        early = self.early_answer(request, params)
        if early is not None:
            return early
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(params.get(name), str) or not params[name]:
                return self.error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        bad_window = window_refusal(self, params["completion_window"])
        if bad_window is not None:
            return bad_window
        metadata = params.get("metadata")
        problem = _metadata_problem(metadata)
        if problem:
            return self.error(400, problem, param="metadata", code="invalid_value")
        expiry = params.get("output_expires_after")
        if expiry is not None and not self.valid_expiry(expiry):
            lo, hi = self.expiry_range
            return self.error(
                400,
                "Invalid 'output_expires_after': anchor must be 'created_at' and seconds "
                f"between {lo} and {hi}.",
                param="output_expires_after",
                code="invalid_value",
            )
        input_file = self.live_file(params["input_file_id"])
        if input_file is None:
            return self.not_found("File", params["input_file_id"])
        if input_file.purpose != self.batch_purpose:
            return self.error(
                400,
                f"File {input_file.id} has purpose '{input_file.purpose}'; "
                f"batches need purpose '{self.batch_purpose}'.",
                param="input_file_id",
            )
        endpoint: str = params["endpoint"]
        requests, errors = self.parse_input(input_file.data, endpoint)
        model = next(
            (r.body["model"] for r in requests if isinstance(r.body.get("model"), str)), None
        )
        refused = None if errors else self.queue_refusal(requests, model)
        if refused is not None:
            answer = self.refuse_queue_full(refused)
            if answer is not None:
                return answer
            errors = [
                {"code": TOKEN_LIMIT_EXCEEDED, "message": refused, "param": None, "line": None}
            ]
        batch = self.new_batch(
            self.number_attempts(requests),
            self.run,
            metadata=metadata or {},
            extra={
                "endpoint": endpoint,
                "input_file_id": input_file.id,
                "completion_window": params["completion_window"],
                "model": model,
                "output_expires_after": params.get("output_expires_after"),
            },
            errors=errors or None,
            queue_model=model,
        )
        return self.created(request, batch)

    def valid_expiry(self, expiry: Any) -> bool:
        """Whether an ``output_expires_after`` (or file ``expires_after``) object is one the API
        takes: anchor ``created_at``, seconds within :attr:`expiry_range`."""
        lo, hi = self.expiry_range
        if not isinstance(expiry, dict) or expiry.get("anchor") != "created_at":
            return False
        seconds = expiry.get("seconds")
        return isinstance(seconds, int) and not isinstance(seconds, bool) and lo <= seconds <= hi

    def refuse_queue_full(self, message: str) -> Response | None:
        """A create over the organisation's queue limit (a hook): OpenAI answers None, so the
        batch is made and fails validation with ``token_limit_exceeded``; Azure's fail-fast
        regions refuse it at once."""
        return None

    def early_answer(self, request: Request, params: dict[str, Any]) -> Response | None:
        """The answer to a create before it makes a batch (a hook: refusals, replays), or None."""
        return None

    def created(self, request: Request, batch: SandboxBatch) -> Response:
        """What a create answers (a hook): the batch object."""
        return self.json(self.batch_object(batch))

    def parse_input(
        self, data: bytes, endpoint: str
    ) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
        """Requests of an input file and the batch-level errors (a hook for Azure's rules)."""
        requests, errors = _parse_input(data, endpoint, self.max_requests, self.lenient_lines)
        if not errors and codec.is_embeddings_url(endpoint):
            n_inputs = sum(
                len(r.body["input"]) if isinstance(r.body.get("input"), list) else 1
                for r in requests
            )
            if n_inputs > MAX_EMBEDDING_INPUTS:
                # the error code is a guess at OpenAI's (its docs state the limit, not the code)
                return [], [
                    {
                        "code": "too_many_embedding_inputs",
                        "message": f"The batch input file has {n_inputs} embedding inputs; "
                        f"an embeddings batch may hold at most {MAX_EMBEDDING_INPUTS}.",
                        "param": None,
                        "line": None,
                    }
                ]
        return requests, errors

    # -- batches: running one request ------------------------------------------------------
    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        """Answer one request: a 400 for invalid params, an injected 500, or a completion."""
        try:
            parsed = codec.check_body(req.body, url=str(batch.extra.get("endpoint", "")))
        except codec.WireError as exc:
            body = codec.error_body(
                self.engine.echo_key(exc.message),
                type="invalid_request_error",
                code=exc.code,
                param=exc.param,
            )
            return Outcome(400, body)
        refused = model_refusal(self, parsed)
        if refused is not None:
            return refused
        if self.item_fails(req.custom_id, req.attempt):
            body = codec.error_body(
                self.engine.echo_key(
                    "The server had an error while processing your request. Sorry about that!"
                ),
                type="server_error",
                code="server_error",
            )
            return Outcome(500, body)
        if isinstance(parsed, codec.EmbeddingRequest):
            return self.embed(parsed)
        if not isinstance(parsed, codec.ChatRequest):  # Responses, completions, moderations
            broken = self.breaks_json(req.custom_id, req.attempt)
            return endpoints_sandbox.answer(
                self.engine, parsed, req, batch, self.ns, broken_json=broken
            )
        chat = parsed
        rf_type = (chat.response_format or {}).get("type")
        schema = chat.json_schema()
        broken = schema is not None and self.breaks_json(req.custom_id, req.attempt)
        reply = self.engine.model.chat(
            model=chat.model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=schema,
            json_object=rf_type == "json_object",
            stop=chat.stop,
            invalid_json=broken,
        )
        completion_tokens = reply.completion_tokens * chat.n
        # automatic prefix caching; the families that bill cache writes also report them
        writes = chat.model.startswith(CACHE_WRITE_FAMILIES)
        cached = self.engine.model.cache.automatic(
            (self.ns, chat.model), chat.transcript(), writes=writes, length=reply.prompt_tokens
        )
        body = codec.chat_completion(
            completion_id="chatcmpl-" + codec.short_hash(batch.id, req.index),
            created=int(batch.started_at),
            model=chat.model,
            texts=[reply.text] * chat.n,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached.read,
            cache_write_tokens=cached.written if writes else None,
        )
        return Outcome(200, body, (reply.prompt_tokens, completion_tokens))

    def embed(self, emb: codec.EmbeddingRequest) -> Outcome:
        """An embeddings response: one vector per input, input tokens only."""
        body, tokens = self.engine.model.embeddings_list(
            model=emb.model,
            texts=emb.inputs,
            dimensions=emb.dimensions,
            encoding_format=emb.encoding_format,
        )
        return Outcome(200, body, (tokens, 0))

    # -- batches: the object ---------------------------------------------------------------
    def batch_view(self, batch: SandboxBatch, request: Request) -> Any:
        return self.batch_object(batch)

    def batch_object(self, batch: SandboxBatch) -> dict[str, Any]:
        now = self.now()
        state = batch.state(now)
        ts = batch.timestamps(now)
        t = self.tally(batch, now)
        files = self.outputs(batch, now) if state in TERMINAL_STATES else {}
        extra = batch.extra

        def sec(value: float | None) -> int | None:
            return int(value) if value is not None else None

        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": extra["endpoint"],
            "model": extra["model"],
            "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
            "input_file_id": extra["input_file_id"],
            "completion_window": extra["completion_window"],
            "status": self.status_word(state),
            "output_file_id": files.get("output_file_id"),
            "error_file_id": files.get("error_file_id"),
            "created_at": int(batch.created_at),
            "in_progress_at": sec(ts["in_progress_at"]),
            "expires_at": int(batch.expires_at),
            "finalizing_at": sec(ts["finalizing_at"]),
            "completed_at": sec(ts["completed_at"]),
            "failed_at": sec(ts["failed_at"]),
            "expired_at": sec(ts["expired_at"]),
            "cancelling_at": sec(ts["cancelling_at"]),
            "cancelled_at": sec(ts["cancelled_at"]),
            # counts are of requests that ran; leftovers of a cancelled/expired batch are in the
            # error file but not counted, so completed + failed < total shows it stopped early
            "request_counts": {
                "total": len(batch.requests),
                "completed": t["ok"],
                "failed": t["failed"],
            },
            "usage": {
                "input_tokens": t["input"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": t["output"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": t["input"] + t["output"],
            },
            "metadata": batch.metadata or None,
        }

    def status_word(self, state: str) -> str:
        """The API's word for a neutral state (a hook: OpenAI's words are the neutral ones)."""
        return state

    def outputs(self, batch: SandboxBatch, now: float) -> dict[str, Any]:
        """The output and error files, written once when the batch is first seen terminal."""
        return self.output_once(batch, lambda: self.write_files(batch, now), none_if_failed=True)

    def write_files(self, batch: SandboxBatch, now: float) -> dict[str, Any]:
        """Write an ended batch's output and error files; their ids by batch-object key."""
        state = batch.state(now)
        if ended_before_running(batch):
            # cancelled or expired while still validating: nothing ran, and OpenAI leaves both
            # file ids null (UNVERIFIED beyond user reports); the client labels the items
            return {}
        leftover_code = {"cancelled": "batch_cancelled", "expired": "batch_expired"}.get(state)
        ok_lines: list[bytes] = []
        err_lines: list[bytes] = []
        processed = batch.processed(now)
        for i, req in enumerate(batch.requests):
            line_id = "batch_req_" + codec.short_hash(batch.id, i)
            if i < processed:
                outcome: Outcome = batch.outcome(i)
                line = codec.response_line(
                    line_id,
                    req.custom_id,
                    status_code=outcome.status_code,
                    request_id="req_" + codec.short_hash(batch.id, i, "req", length=32),
                    body=outcome.body,
                )
                (ok_lines if outcome.ok else err_lines).append(wire.dumps(line))
            elif leftover_code:
                message = (
                    "This request could not be executed before the completion window expired."
                    if leftover_code == "batch_expired"
                    else "This request was not executed because the batch was cancelled."
                )
                err_lines.append(
                    wire.dumps(
                        codec.error_line(
                            line_id, req.custom_id, code=leftover_code, message=message
                        )
                    )
                )
        expiry = batch.extra.get("output_expires_after") or {}
        expires_after = expiry.get("seconds") if isinstance(expiry, dict) else None
        files = self.write_outputs(
            batch,
            [("output_file_id", "output", ok_lines), ("error_file_id", "error", err_lines)],
            purpose="batch_output",
            expires_after=int(expires_after) if expires_after else BATCH_FILE_EXPIRY,
        )
        result: dict[str, Any] = {key: f.id for key, f in files.items()}
        return result

    # -- batches: endpoints ----------------------------------------------------------------
    async def list_batches(self, request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return self.error(
                400, "Invalid 'limit': expected 1 to 100.", param="limit", code="invalid_value"
            )
        # newest first, as OpenAI lists them
        batches = list(reversed(self.engine.list_batches(self.ns)))
        page, has_more = cursor_page(batches, [b.id for b in batches], q.get("after"), limit)
        return self.json(cursor_list([self.batch_object(b) for b in page], has_more))

    # -- models ----------------------------------------------------------------------------
    @staticmethod
    def model_object(model: str) -> dict[str, Any]:
        return {
            "id": model,
            "object": "model",
            "created": MODELS_CREATED,
            "owned_by": "polybatch-sandbox",
        }

    async def list_models(self, request: Request) -> Response:
        return self.json(
            {"object": "list", "data": [self.model_object(m) for m in SYNTHETIC_MODELS]}
        )

    async def retrieve_model(self, request: Request) -> Response:
        model = request.path_params["model"]
        if model not in SYNTHETIC_MODELS:
            return self.error(
                404, f"The model '{model}' does not exist", code="model_not_found", param="model"
            )
        return self.json(self.model_object(model))

    def webhook_event(self, batch: SandboxBatch, state: str) -> Any:
        """OpenAI's ``batch.*`` event (OpenAI itself only: not the compatible lanes)."""
        return webhook_sandbox.batch_event(self, batch, state) if self.ns == NAMESPACE else None

    async def create_webhook_endpoint(self, request: Request) -> Response:
        return await webhook_sandbox.create_endpoint(self, request)

    def routes(self) -> list[BaseRoute]:
        r, b, K = self.route, self.api_base, RouteKind
        return [
            *self.file_routes(),
            r(b + "/batches", self.create_batch, ["POST"], K.CREATE),
            r(b + "/batches", self.list_batches, ["GET"], K.LIST),
            r(b + "/batches/{batch_id}", self.retrieve_batch, ["GET"], K.POLL),
            r(b + "/batches/{batch_id}/cancel", self.cancel_batch, ["POST"], K.CANCEL),
            r(b + "/models", self.list_models, ["GET"], K.OTHER),
            r(b + "/webhook_endpoints", self.create_webhook_endpoint, ["POST"], K.OTHER),
            r(b + "/models/{model:path}", self.retrieve_model, ["GET"], K.OTHER),
        ]


def _metadata_problem(metadata: Any) -> str | None:
    """Why ``metadata`` breaks OpenAI's rules (16 pairs, keys <= 64, values <= 512), or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "Invalid 'metadata': expected an object of string pairs."
    if len(metadata) > 16:
        return "Invalid 'metadata': at most 16 pairs."
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512:
            return f"Invalid 'metadata.{key}': keys up to 64 characters, string values up to 512."
    return None


def _parse_input(
    data: bytes, endpoint: str, max_requests: int = MAX_REQUESTS, lenient: bool = False
) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
    """Requests of a batch input file, and the batch-level errors that fail it (empty: valid).

    ``lenient``: a line may leave out ``method`` and ``url`` (they default to POST and the
    batch's endpoint), as ``{custom_id, body}`` lines do."""
    requests: list[BatchRequest] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def fail(code: str, message: str, line: int | None, param: str | None = None) -> None:
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append({"code": code, "message": message, "param": param, "line": line})

    lines = [(n, raw) for n, raw in enumerate(data.split(b"\n"), 1) if raw.strip()]
    if not lines:
        fail("empty_file", "The batch input file is empty.", None)
    if len(lines) > max_requests:
        fail("too_many_tasks", f"The batch input file has more than {max_requests} requests.", None)
        return [], errors
    for number, raw in lines:
        try:
            if lenient:
                obj = wire.load_object(raw)
                raw = wire.dumps({"method": "POST", "url": endpoint, **obj})
            parsed = codec.decode_input_line(raw)
        except codec.WireError as exc:
            fail(exc.code, exc.message, number, exc.param)
            continue
        if parsed.method != "POST":
            fail("invalid_method", f"Method must be POST, got {parsed.method!r}.", number, "method")
        elif parsed.url != endpoint:
            fail(
                "url_mismatch",
                f"The url {parsed.url!r} does not match the batch endpoint {endpoint!r}.",
                number,
                "url",
            )
        elif parsed.custom_id in seen:
            fail(
                "duplicate_custom_id",
                f"The custom_id {parsed.custom_id!r} is used more than once.",
                number,
                "custom_id",
            )
        else:
            seen.add(parsed.custom_id)
            requests.append(BatchRequest(len(requests), parsed.custom_id, parsed.body))
    return (requests, []) if not errors else ([], errors)


class CompatibleApi(OpenAIApi):
    """OpenAI's routes with one :class:`~polybatch_openai.compatible.Preset`'s differences: its
    upload purpose, line shape, status words, progress field, refused create fields, create
    envelope, and an idempotency header under which a repeated create answers the same batch."""

    def __init__(self, engine: SandboxEngine, namespace: str, preset: Preset) -> None:
        super().__init__(engine, namespace)
        self.preset = preset
        self.batch_purpose = preset.purpose
        if preset.purpose != "batch":  # the vendor's own word replaces OpenAI's
            self.upload_purposes = (UPLOAD_PURPOSES - {"batch"}) | {preset.purpose}
        self.max_requests = preset.max_requests
        self.completion_windows = preset.completion_windows
        self.max_file_bytes = preset.max_bytes
        self.lenient_lines = preset.line_fields == "body"
        self.words = preset.status_words()
        #: idempotency key -> the batch its first create made
        self.replays: dict[str, str] = {}

    def status_word(self, state: str) -> str:
        return self.words[state]

    def idempotency_key(self, request: Request) -> str | None:
        header = self.preset.idempotency_header
        return request.headers.get(header) if header else None

    def early_answer(self, request: Request, params: dict[str, Any]) -> Response | None:
        for name in sorted(self.preset.omit):
            if params.get(name) is not None:
                return self.error(
                    400,
                    f"Unrecognized request argument supplied: {name}",
                    param=name,
                    code="unknown_parameter",
                )
        key = self.idempotency_key(request)
        with self.engine.lock:
            replayed = self.find_batch(self.replays[key]) if key in self.replays else None
        return self.created(request, replayed) if replayed is not None else None

    def created(self, request: Request, batch: SandboxBatch) -> Response:
        key = self.idempotency_key(request)
        if key:
            with self.engine.lock:
                self.replays.setdefault(key, batch.id)
        obj = self.batch_object(batch)
        envelope = self.preset.batch_envelope
        return self.json({envelope: obj, "warning": None} if envelope else obj)

    def batch_object(self, batch: SandboxBatch) -> dict[str, Any]:
        obj = super().batch_object(batch)
        if self.preset.progress_field:
            t = self.tally(batch, self.now())
            done = t["ok"] + t["failed"]
            obj[self.preset.progress_field] = 100.0 * done / len(batch.requests or [0])
        return obj


def openai_routes(engine: SandboxEngine, *, namespace: str = NAMESPACE) -> list[BaseRoute]:
    """The OpenAI Files/Batches/Models routes over ``engine`` (mount them at ``/openai``)."""
    return OpenAIApi(engine, namespace).routes()


def ended_before_running(batch: SandboxBatch) -> bool:
    """Whether ``batch`` was cancelled or expired before its first request could run."""
    cancelled = (
        batch.cancel_requested_at is not None and batch.cancel_requested_at < batch.started_at
    )
    return cancelled or batch.expires_at < batch.started_at
