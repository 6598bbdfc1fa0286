"""The emulated OpenAI Files and Batches API, on top of the shared SandboxEngine.

Mounted by the sandbox server at ``/openai``; clients use ``base_url={server}/openai/v1``. The batch
lifecycle comes from the engine's clock; this module only translates it to OpenAI's wire shapes and
answers each request with the engine's SyntheticModel. Per-request problems (bad parameters, injected
faults) become error-file lines; whole-file problems fail the batch with ``errors.data``.

A batch's ``endpoint`` decides how its lines are answered: ``/v1/embeddings`` lines get vectors from
``SyntheticModel.embed`` (at most 50,000 inputs per batch), anything else is taken as chat
completions. Structured-output requests get schema-valid JSON, or broken JSON when the
``invalid_json_rate`` fault strikes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.engine import DAY, SandboxBatch, SandboxEngine, SandboxFile
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT
from polybatch.sandbox.model import SYNTHETIC_MODELS

from . import codec

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

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class _Request:
    """One parsed line of a batch input file, as the engine stores it."""

    index: int
    custom_id: str
    body: dict[str, Any]
    #: how many batches of this engine carried this custom_id before (fault draws differ per try)
    attempt: int = 0


@dataclass(frozen=True)
class _Outcome:
    """What running one request produced: an HTTP status and a body."""

    status_code: int
    body: dict[str, Any]
    usage: tuple[int, int]  # (prompt, completion) tokens, for the batch's aggregate usage

    @property
    def ok(self) -> bool:
        return self.status_code == 200


class _Api:
    """Route handlers sharing one engine."""

    #: per-API limits (Azure's routes subclass this with their own)
    max_requests: int = MAX_REQUESTS
    expiry_range: tuple[int, int] = EXPIRY_RANGE

    def __init__(self, engine: SandboxEngine, namespace: str = NAMESPACE) -> None:
        self.engine = engine
        self.ns = namespace
        self.attempts: dict[str, int] = {}

    # -- plumbing --------------------------------------------------------------------------
    def request_id(self) -> str:
        return "req_" + self.engine.new_id("")

    def json(self, data: Any, status: int = 200) -> Response:
        return JSONResponse(data, status_code=status, headers={"x-request-id": self.request_id()})

    def error(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> Response:
        return self.json(codec.error_body(message, type=type, code=code, param=param), status)

    def not_found(self, kind: str, ident: str) -> Response:
        return self.error(404, f"No such {kind}: '{ident}'", code=None, param="id")

    def guarded(self, handler: Endpoint) -> Endpoint:
        """Wrap a handler with the API-key check."""

        async def endpoint(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
            if not self.engine.check_key(presented or None):
                # never echo the presented key back
                message = (
                    "Incorrect API key provided."
                    if presented
                    else "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                )
                return self.error(401, message, code="invalid_api_key")
            return await handler(request)

        return endpoint

    def now(self) -> float:
        return self.engine.now()

    # -- files -----------------------------------------------------------------------------
    def live_file(self, file_id: str) -> SandboxFile | None:
        f = self.engine.get_file(self.ns, file_id)
        if f is None or (f.expires_at is not None and f.expires_at <= self.now()):
            return None  # expired files are gone, as at OpenAI
        return f

    @staticmethod
    def file_object(f: SandboxFile) -> dict[str, Any]:
        return {
            "id": f.id,
            "object": "file",
            "bytes": len(f.data),
            "created_at": f.created_at,
            "expires_at": f.expires_at,
            "filename": f.filename,
            "purpose": f.purpose,
            "status": "processed",
            "status_details": None,
        }

    async def create_file(self, request: Request) -> Response:
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            return self.error(400, f"Could not parse multipart form: {exc}")
        try:
            purpose = form.get("purpose")
            upload = form.get("file")
            if not isinstance(purpose, str) or purpose not in UPLOAD_PURPOSES:
                return self.error(
                    400,
                    f"Invalid value for 'purpose': {purpose!r}. "
                    f"Supported values are: {', '.join(sorted(UPLOAD_PURPOSES))}.",
                    param="purpose",
                    code="invalid_value",
                )
            if not isinstance(upload, UploadFile):
                return self.error(400, "Missing required parameter: 'file'.", param="file")
            anchor = form.get("expires_after[anchor]")
            seconds_raw = form.get("expires_after[seconds]")
            expires: int | None = BATCH_FILE_EXPIRY if purpose == "batch" else None
            if anchor is not None or seconds_raw is not None:
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
                expires = seconds
            data = await upload.read()
            filename = upload.filename or "upload"
            if purpose == "batch" and not filename.endswith(".jsonl"):
                return self.error(400, "Batch input files must be .jsonl files.", param="file")
            if purpose == "batch" and len(data) > MAX_BATCH_FILE_BYTES:
                return self.error(
                    400,
                    "Batch input files may hold at most 200 MB.",
                    param="file",
                    code="file_too_large",
                )
        finally:
            await form.close()  # spooled temp files
        f = self.engine.add_file(
            self.ns, data, filename=filename, purpose=purpose, expires_after=expires
        )
        return self.json(self.file_object(f))

    async def list_files(self, request: Request) -> Response:
        q = request.query_params
        purpose = q.get("purpose")
        order = q.get("order", "desc")
        try:
            limit = int(q.get("limit", "10000"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 10_000 or order not in ("asc", "desc"):
            return self.error(
                400, "Invalid 'limit' or 'order'.", param="limit", code="invalid_value"
            )
        with self.engine.lock:
            files = [
                f
                for f in list(self.engine.files.values())
                if f.namespace == self.ns and self.live_file(f.id) and purpose in (None, f.purpose)
            ]
        if order == "desc":
            files.reverse()  # the store keeps insertion (creation) order
        return self.json(self.page([self.file_object(f) for f in files], q.get("after"), limit))

    @staticmethod
    def page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
        """A cursor page: items following ``after`` (an id), at most ``limit``."""
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        data = items[:limit]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit,
        }

    async def retrieve_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        f = self.live_file(file_id)
        return self.json(self.file_object(f)) if f else self.not_found("File", file_id)

    async def delete_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self.engine.lock:
            f = self.live_file(file_id)
            if f is None:
                return self.not_found("File", file_id)
            del self.engine.files[f.id]
        return self.json({"id": f.id, "object": "file", "deleted": True})

    async def file_content(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        f = self.live_file(file_id)
        if f is None:
            return self.not_found("File", file_id)
        offset_raw = request.query_params.get("offset", "0")
        try:
            offset = int(offset_raw)
        except ValueError:
            offset = -1
        if offset < 0:
            return self.error(
                400, "Invalid 'offset': expected a non-negative integer.", param="offset"
            )
        # an injected truncation cuts this download short mid-line; fetching again may succeed
        data = self.engine.download(f.fault_key, f.data)
        return Response(
            data[offset:],
            media_type="application/octet-stream",
            headers={"x-request-id": self.request_id()},
        )

    # -- batches: creation -----------------------------------------------------------------
    async def create_batch(self, request: Request) -> Response:
        try:
            params = await request.json()
        except ValueError:
            return self.error(400, "We could not parse the JSON body of your request.")
        if not isinstance(params, dict):
            return self.error(400, "The request body must be a JSON object.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(params.get(name), str) or not params[name]:
                return self.error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        metadata = params.get("metadata")
        problem = _metadata_problem(metadata)
        if problem:
            return self.error(400, problem, param="metadata", code="invalid_value")
        input_file = self.live_file(params["input_file_id"])
        if input_file is None:
            return self.not_found("File", params["input_file_id"])
        if input_file.purpose != "batch":
            return self.error(
                400,
                f"File {input_file.id} has purpose '{input_file.purpose}'; batches need purpose 'batch'.",
                param="input_file_id",
            )
        endpoint: str = params["endpoint"]
        requests, errors = self.parse_input(input_file.data, endpoint)
        with self.engine.lock:
            for i, req in enumerate(requests):
                attempt = self.attempts.get(req.custom_id, 0)
                self.attempts[req.custom_id] = attempt + 1
                requests[i] = replace(req, attempt=attempt)
        batch_ref: list[SandboxBatch] = []
        batch = self.engine.create_batch(
            self.ns,
            requests,
            lambda r: self.run(r, batch_ref[0]),
            metadata=metadata or {},
            extra={
                "endpoint": endpoint,
                "input_file_id": input_file.id,
                "completion_window": params["completion_window"],
                "model": next(
                    (r.body["model"] for r in requests if isinstance(r.body.get("model"), str)),
                    None,
                ),
                "output_expires_after": params.get("output_expires_after"),
            },
            errors=errors or None,
        )
        batch_ref.append(batch)
        return self.json(self.batch_object(batch))

    def parse_input(
        self, data: bytes, endpoint: str
    ) -> tuple[list[_Request], list[dict[str, Any]]]:
        """Requests of an input file and the batch-level errors (a hook for Azure's rules)."""
        requests, errors = _parse_input(data, endpoint, self.max_requests)
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
    @staticmethod
    def bad_request(exc: codec.WireError) -> _Outcome:
        body = codec.error_body(
            exc.message, type="invalid_request_error", code=exc.code, param=exc.param
        )
        return _Outcome(400, body, (0, 0))

    def run(self, req: _Request, batch: SandboxBatch) -> _Outcome:
        """Answer one request: a 400 for invalid params, an injected 500, or a completion."""
        engine = self.engine
        embeddings = codec.is_embeddings_url(str(batch.extra.get("endpoint", "")))
        try:
            chat = None if embeddings else codec.parse_chat_body(req.body)
            emb = codec.parse_embeddings_body(req.body) if embeddings else None
        except codec.WireError as exc:
            return self.bad_request(exc)
        # keyed by (custom_id, attempt), not the batch id (random): the same run draws the same
        # faults every time, and a retry of a failed request in a new batch draws afresh
        if engine.faults.hit(engine.faults.item_error_rate, self.ns, req.custom_id, req.attempt):
            body = codec.error_body(
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
                code="server_error",
            )
            return _Outcome(500, body, (0, 0))
        if emb is not None:
            return self.embed(emb)
        assert chat is not None
        rf_type = (chat.response_format or {}).get("type")
        schema = chat.json_schema()
        faults = engine.faults
        # its own key: not the same draw as the item error above
        broken = schema is not None and faults.hit(
            faults.invalid_json_rate, "invalid_json", self.ns, req.custom_id, req.attempt
        )
        if broken:
            engine.note_fault("invalid_json", f"{self.ns} {req.custom_id}", str(req.attempt))
        reply = engine.model.chat(
            model=chat.model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=schema,
            json_object=rf_type == "json_object",
            stop=chat.stop,
            invalid_json=broken,
        )
        completion_tokens = reply.completion_tokens * chat.n
        body = codec.chat_completion(
            completion_id="chatcmpl-" + codec.short_hash(batch.id, req.index),
            created=int(batch.started_at),
            model=chat.model,
            texts=[reply.text] * chat.n,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=completion_tokens,
        )
        return _Outcome(200, body, (reply.prompt_tokens, completion_tokens))

    def embed(self, emb: codec.EmbeddingRequest) -> _Outcome:
        """An embeddings response: one vector per input, input tokens only."""
        model = self.engine.model
        vectors = [
            codec.encode_vector(
                model.embed(model=emb.model, text=text, dimensions=emb.dimensions),
                emb.encoding_format,
            )
            for text in emb.inputs
        ]
        tokens = sum(model.embedding_tokens(text) for text in emb.inputs)
        body = codec.embeddings_response(model=emb.model, vectors=vectors, prompt_tokens=tokens)
        return _Outcome(200, body, (tokens, 0))

    # -- batches: the object ---------------------------------------------------------------
    def tally(self, batch: SandboxBatch, now: float) -> dict[str, int]:
        """Counts and token sums over the requests run so far (kept incrementally on the batch)."""
        with self.engine.lock:
            t: dict[str, int] = batch.extra.setdefault(
                "tally", {"seen": 0, "completed": 0, "failed": 0, "input": 0, "output": 0}
            )
            for i in range(t["seen"], batch.processed(now)):
                outcome: _Outcome = batch.outcome(i)
                t["completed" if outcome.ok else "failed"] += 1
                t["input"] += outcome.usage[0]
                t["output"] += outcome.usage[1]
                t["seen"] = i + 1
            return dict(t)

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
            "status": state,
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
                "completed": t["completed"],
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

    def outputs(self, batch: SandboxBatch, now: float) -> dict[str, Any]:
        """The output and error files, written once when the batch is first seen terminal."""
        with self.engine.lock:
            if batch.output is not None:
                return batch.output
            if batch.errors is not None:
                batch.output = {}  # failed validation: nothing ran, no files
                return batch.output
            state = batch.state(now)
            leftover_code = {"cancelled": "batch_cancelled", "expired": "batch_expired"}.get(state)
            ok_lines: list[bytes] = []
            err_lines: list[bytes] = []
            processed = batch.processed(now)
            for i, req in enumerate(batch.requests):
                line_id = "batch_req_" + codec.short_hash(batch.id, i)
                if i < processed:
                    outcome: _Outcome = batch.outcome(i)
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
            result: dict[str, Any] = {}
            for key, lines, suffix in (
                ("output_file_id", ok_lines, "output"),
                ("error_file_id", err_lines, "error"),
            ):
                if key == "output_file_id" and BATCH_MISSING_OUTPUT in batch.faults:
                    continue  # injected fault: the successes' file never appears
                if lines:
                    f = self.engine.add_file(
                        self.ns,
                        b"\n".join(lines) + b"\n",
                        filename=f"{batch.id}_{suffix}.jsonl",
                        purpose="batch_output",
                        expires_after=int(expires_after) if expires_after else BATCH_FILE_EXPIRY,
                    )
                    f.fault_key = (self.ns, batch.serial, suffix)
                    result[key] = f.id
            batch.output = result
            return result

    # -- batches: endpoints ----------------------------------------------------------------
    def find(self, request: Request) -> SandboxBatch | None:
        return self.engine.get_batch(self.ns, request.path_params["batch_id"])

    async def retrieve_batch(self, request: Request) -> Response:
        batch = self.find(request)
        if batch is None:
            return self.not_found("Batch", request.path_params["batch_id"])
        return self.json(self.batch_object(batch))

    async def cancel_batch(self, request: Request) -> Response:
        batch = self.find(request)
        if batch is None:
            return self.not_found("Batch", request.path_params["batch_id"])
        self.engine.cancel(batch)  # idempotent; a no-op once the batch has ended
        return self.json(self.batch_object(batch))

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
        after = q.get("after")
        if after:
            ids = [b.id for b in batches]
            batches = batches[ids.index(after) + 1 :] if after in ids else []
        page = [self.batch_object(b) for b in batches[:limit]]
        return self.json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(batches) > limit,
            }
        )

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

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/v1/files", g(self.create_file), methods=["POST"]),
            Route("/v1/files", g(self.list_files), methods=["GET"]),
            Route("/v1/files/{file_id}", g(self.retrieve_file), methods=["GET"]),
            Route("/v1/files/{file_id}", g(self.delete_file), methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", g(self.file_content), methods=["GET"]),
            Route("/v1/batches", g(self.create_batch), methods=["POST"]),
            Route("/v1/batches", g(self.list_batches), methods=["GET"]),
            Route("/v1/batches/{batch_id}", g(self.retrieve_batch), methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", g(self.cancel_batch), methods=["POST"]),
            Route("/v1/models", g(self.list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", g(self.retrieve_model), methods=["GET"]),
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
    data: bytes, endpoint: str, max_requests: int = MAX_REQUESTS
) -> tuple[list[_Request], list[dict[str, Any]]]:
    """Requests of a batch input file, and the batch-level errors that fail it (empty: valid)."""
    requests: list[_Request] = []
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
            requests.append(_Request(len(requests), parsed.custom_id, parsed.body))
    return (requests, []) if not errors else ([], errors)


def openai_routes(engine: SandboxEngine, *, namespace: str = NAMESPACE) -> list[BaseRoute]:
    """The OpenAI Files/Batches/Models routes over ``engine`` (mount them at ``/openai``)."""
    return _Api(engine, namespace).routes()
