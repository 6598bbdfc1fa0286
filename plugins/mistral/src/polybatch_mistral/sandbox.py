"""The emulated Mistral Files and Batch Jobs API, on top of the shared SandboxEngine.

Mounted by the sandbox server at ``/mistral``; the SDK is pointed there with
``server_url={server}/mistral`` and appends the paths it calls (``/v1/files``, ``/v1/batch/jobs``,
...), which are the routes below. The job lifecycle comes from the engine's clock; this module only
translates it to Mistral's wire shapes (upper-case statuses, ``*_requests`` counts, ``output_file``
and ``error_file``) and answers each request with the engine's SyntheticModel.

Per-request problems (bad parameters, injected faults) become lines of the job's error file;
whole-file problems (no lines, broken JSON, duplicate custom_ids) fail the job with ``errors``.
A cancelled or timed-out job writes lines only for the requests it ran.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine, SandboxFile
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT

from . import codec

NAMESPACE = "mistral"
MAX_REQUESTS = 1_000_000
#: the SDK's files.upload docstring: "individual files can be a maximum of 512 MB"
MAX_FILE_BYTES = 512 * 1024 * 1024
#: job-level validation stops collecting after this many distinct error messages
MAX_REPORTED_ERRORS = 100
UPLOAD_PURPOSES = frozenset({"fine-tune", "batch", "ocr", "agentic_safety"})
#: the SDK's APIEndpoint literals: what a job may name (the sandbox runs chat completions only)
API_ENDPOINTS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/fim/completions",
        "/v1/moderations",
        "/v1/chat/moderations",
        "/v1/ocr",
        "/v1/classifications",
        "/v1/chat/classifications",
        "/v1/conversations",
        "/v1/audio/transcriptions",
    }
)
#: bounds of ``timeout_hours``; Mistral documents the default (24), not the range (UNVERIFIED)
TIMEOUT_HOURS_RANGE = (1, 168)
#: engine (OpenAI-style) states -> Mistral job statuses
STATUS: dict[str, str] = {
    "validating": "QUEUED",
    "in_progress": "RUNNING",
    "finalizing": "RUNNING",
    "cancelling": "CANCELLATION_REQUESTED",
    "completed": "SUCCESS",
    "failed": "FAILED",
    "expired": "TIMEOUT_EXCEEDED",
    "cancelled": "CANCELLED",
}

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class _Request:
    """One parsed line of a batch input file, as the engine stores it."""

    index: int
    custom_id: str
    body: dict[str, Any]
    #: how many jobs of this engine carried this custom_id before (fault draws differ per try)
    attempt: int = 0


@dataclass(frozen=True)
class _Outcome:
    """What running one request produced: an HTTP status and a body."""

    status_code: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status_code == 200


class _Api:
    """Route handlers sharing one engine."""

    def __init__(self, engine: SandboxEngine, namespace: str = NAMESPACE) -> None:
        self.engine = engine
        self.ns = namespace
        self.attempts: dict[str, int] = {}
        #: generated files -> (sample_type, source) of their file object
        self.file_kinds: dict[str, tuple[str, str]] = {}

    # -- plumbing --------------------------------------------------------------------------
    def json(self, data: Any, status: int = 200) -> Response:
        return JSONResponse(
            data, status_code=status, headers={"x-request-id": self.engine.new_id("")}
        )

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
        return self.error(404, f"{kind} {ident} not found", type="not_found_error")

    def guarded(self, handler: Endpoint) -> Endpoint:
        """Wrap a handler with the API-key check (``Authorization: Bearer KEY``)."""

        async def endpoint(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
            if not self.engine.check_key(presented or None):
                # Mistral answers a bad key with a bare 401 "Unauthorized"; never echo the key
                return self.json({"message": "Unauthorized", "request_id": ""}, 401)
            return await handler(request)

        return endpoint

    def now(self) -> float:
        return self.engine.now()

    # -- files -----------------------------------------------------------------------------
    def live_file(self, file_id: str) -> SandboxFile | None:
        f = self.engine.get_file(self.ns, file_id)
        if f is None or (f.expires_at is not None and f.expires_at <= self.now()):
            return None
        return f

    def file_object(self, f: SandboxFile, *, deleted: bool | None = None) -> dict[str, Any]:
        default = ("batch_request" if f.purpose == "batch" else "instruct", "upload")
        sample_type, source = self.file_kinds.get(f.id, default)
        obj: dict[str, Any] = {
            "id": f.id,
            "object": "file",
            "bytes": len(f.data),
            "created_at": f.created_at,
            "filename": f.filename,
            "purpose": f.purpose,
            "sample_type": sample_type,
            "source": source,
            "num_lines": f.data.count(b"\n") + (0 if f.data.endswith(b"\n") or not f.data else 1),
            "mimetype": "application/jsonl" if f.filename.endswith(".jsonl") else None,
            "signature": None,
            "expires_at": f.expires_at,
            "visibility": "workspace",
        }
        if deleted is not None:
            obj["deleted"] = deleted
        return obj

    async def create_file(self, request: Request) -> Response:
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            return self.error(400, f"Could not parse multipart form: {exc}")
        try:
            upload = form.get("file")
            purpose = form.get("purpose") or "fine-tune"
            if not isinstance(purpose, str) or purpose not in UPLOAD_PURPOSES:
                return self.error(
                    422,
                    f"purpose: {purpose!r} is not one of {', '.join(sorted(UPLOAD_PURPOSES))}",
                    param="purpose",
                )
            if not isinstance(upload, UploadFile):
                return self.error(422, "file: field required", param="file")
            expiry_raw = form.get("expiry")
            expires_after: int | None = None
            if expiry_raw not in (None, ""):
                try:
                    expires_after = int(str(expiry_raw)) * 3600  # hours, at Mistral
                except ValueError:
                    return self.error(422, "expiry: expected an integer", param="expiry")
                if expires_after <= 0:
                    return self.error(422, "expiry: expected a positive integer", param="expiry")
            data = await upload.read()
            filename = upload.filename or "upload.jsonl"
        finally:
            await form.close()  # spooled temp files
        if len(data) > MAX_FILE_BYTES:
            return self.error(400, "File too large: the maximum size is 512 MB.", param="file")
        if purpose == "batch" and not filename.endswith(".jsonl"):
            return self.error(400, "Batch files must be .jsonl files.", param="file")
        f = self.engine.add_file(
            self.ns, data, filename=filename, purpose=purpose, expires_after=expires_after
        )
        return self.json(self.file_object(f))

    async def list_files(self, request: Request) -> Response:
        q = request.query_params
        page, size = _paging(q.get("page"), q.get("page_size"))
        if page is None or size is None:
            return self.error(422, "page and page_size must be non-negative integers")
        purpose = q.get("purpose")
        with self.engine.lock:
            files = [
                f
                for f in list(self.engine.files.values())
                if f.namespace == self.ns and self.live_file(f.id) and purpose in (None, f.purpose)
            ]
        files.reverse()  # newest first; the store keeps creation order
        data = [self.file_object(f) for f in files[page * size : (page + 1) * size]]
        return self.json({"data": data, "object": "list", "total": len(files)})

    async def retrieve_file(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        f = self.live_file(file_id)
        return (
            self.json(self.file_object(f, deleted=False)) if f else self.not_found("File", file_id)
        )

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
        # an injected truncation cuts this download short mid-line; fetching again may succeed
        data = self.engine.download(f.fault_key, f.data)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"x-request-id": self.engine.new_id("")},
        )

    # -- jobs: creation --------------------------------------------------------------------
    async def create_job(self, request: Request) -> Response:
        try:
            params = await request.json()
        except ValueError:
            return self.error(400, "The request body is not valid JSON.")
        if not isinstance(params, dict):
            return self.error(422, "The request body must be a JSON object.")
        endpoint = params.get("endpoint")
        if endpoint not in API_ENDPOINTS:
            return self.error(
                422, f"endpoint: {endpoint!r} is not a batch endpoint", param="endpoint"
            )
        if endpoint != codec.CHAT_ENDPOINT:
            return self.error(
                400, f"the sandbox runs only {codec.CHAT_ENDPOINT} jobs", param="endpoint"
            )
        model = params.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            return self.error(422, "model: expected a non-empty string", param="model")
        metadata = params.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            return self.error(422, "metadata: expected an object of strings", param="metadata")
        hours = params.get("timeout_hours", 24)
        lo, hi = TIMEOUT_HOURS_RANGE
        if isinstance(hours, bool) or not isinstance(hours, int) or not lo <= hours <= hi:
            return self.error(
                422, f"timeout_hours: expected an integer from {lo} to {hi}", param="timeout_hours"
            )
        input_files = params.get("input_files")
        inline = params.get("requests")
        if bool(input_files) == bool(inline):
            return self.error(
                422, "Give exactly one of input_files and requests.", param="input_files"
            )
        lines: list[bytes] = []
        file_ids: list[str] = []
        if input_files:
            if not isinstance(input_files, list) or not all(
                isinstance(i, str) for i in input_files
            ):
                return self.error(422, "input_files: expected a list of file ids")
            for file_id in input_files:
                f = self.live_file(file_id)
                if f is None:
                    return self.not_found("File", file_id)
                if f.purpose != "batch":
                    return self.error(
                        400, f"File {file_id} has purpose {f.purpose!r}, not 'batch'."
                    )
                file_ids.append(f.id)
                lines.extend(f.data.split(b"\n"))
        else:
            if not isinstance(inline, list):
                return self.error(422, "requests: expected a list", param="requests")
            lines = [wire.dumps(r) for r in inline]
        requests, errors = _parse_input(lines)
        with self.engine.lock:
            for i, req in enumerate(requests):
                attempt = self.attempts.get(req.custom_id, 0)
                self.attempts[req.custom_id] = attempt + 1
                requests[i] = replace(req, attempt=attempt)
        job_ref: list[SandboxBatch] = []
        job = self.engine.create_batch(
            self.ns,
            requests,
            lambda r: self.run(r, job_ref[0]),
            prefix="job-",
            metadata=metadata or {},
            extra={
                "endpoint": endpoint,
                "input_files": file_ids,
                "model": model,
                "agent_id": params.get("agent_id"),
                "inline": not input_files,
            },
            errors=errors or None,
        )
        # the job's own timeout, unless the engine was told to expire sooner (tests do)
        job.expires_at = min(job.expires_at, job.created_at + hours * 3600)
        job_ref.append(job)
        return self.json(self.job_object(job))

    # -- jobs: running one request ---------------------------------------------------------
    def run(self, req: _Request, job: SandboxBatch) -> _Outcome:
        """Answer one request: a 400 for invalid params, an injected 500, or a completion."""
        engine = self.engine
        try:
            chat = codec.parse_chat_body(req.body, job_model=job.extra.get("model"))
        except codec.WireError as exc:
            return _Outcome(400, codec.error_body(exc.message, code=exc.code, param=exc.param))
        # keyed by (custom_id, attempt), not the job id (random): the same run draws the same
        # faults every time, and a retry of a failed request in a new job draws afresh
        if engine.faults.hit(engine.faults.item_error_rate, self.ns, req.custom_id, req.attempt):
            body = codec.error_body(
                "Internal server error", type="internal_server_error", code="3000"
            )
            return _Outcome(500, body)
        rf_type = (chat.response_format or {}).get("type")
        reply = engine.model.chat(
            model=chat.model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=chat.json_schema(),
            json_object=rf_type == "json_object",
            stop=chat.stop,
        )
        body = codec.chat_completion(
            completion_id=codec.short_hash(job.id, req.index),
            created=int(job.started_at),
            model=chat.model,
            texts=[reply.text] * chat.n,
            finish_reason=reply.finish_reason,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens * chat.n,
        )
        return _Outcome(200, body)

    # -- jobs: the object ------------------------------------------------------------------
    def tally(self, job: SandboxBatch, now: float) -> dict[str, int]:
        """Counts over the requests run so far (kept incrementally on the job)."""
        with self.engine.lock:
            t: dict[str, int] = job.extra.setdefault(
                "tally", {"seen": 0, "succeeded": 0, "failed": 0}
            )
            for i in range(t["seen"], job.processed(now)):
                outcome: _Outcome = job.outcome(i)
                t["succeeded" if outcome.ok else "failed"] += 1
                t["seen"] = i + 1
            return dict(t)

    def job_object(self, job: SandboxBatch) -> dict[str, Any]:
        now = self.now()
        state = job.state(now)
        ts = job.timestamps(now)
        t = self.tally(job, now)
        files = self.outputs(job, now) if state in TERMINAL_STATES else {}
        ended = job.ended_at(now)
        started = ts["in_progress_at"]
        return {
            "id": job.id,
            "object": "batch",
            "input_files": job.extra["input_files"],
            "metadata": job.metadata or None,
            "endpoint": job.extra["endpoint"],
            "model": job.extra["model"],
            "agent_id": job.extra["agent_id"],
            "output_file": files.get("output_file"),
            "error_file": files.get("error_file"),
            # Mistral's errors are {message, count}; engine-made ones (injected) carry more keys
            "errors": [
                {"message": str(e.get("message", "")), "count": int(e.get("count") or 1)}
                for e in job.errors or []
            ],
            "outputs": None,
            "status": STATUS[state],
            "created_at": int(job.created_at),
            "total_requests": len(job.requests),
            "completed_requests": t["succeeded"] + t["failed"],
            "succeeded_requests": t["succeeded"],
            "failed_requests": t["failed"],
            "started_at": int(started) if started is not None else None,
            "completed_at": int(ended) if ended is not None else None,
        }

    def outputs(self, job: SandboxBatch, now: float) -> dict[str, Any]:
        """The output and error files, written once when the job is first seen terminal."""
        with self.engine.lock:
            if job.output is not None:
                return job.output
            if job.errors is not None:
                job.output = {}  # failed validation: nothing ran, no files
                return job.output
            ok_lines: list[bytes] = []
            err_lines: list[bytes] = []
            # requests a cancelled or timed-out job never ran get no line at all
            for i in range(job.processed(now)):
                req: _Request = job.requests[i]
                outcome: _Outcome = job.outcome(i)
                line = codec.response_line(
                    codec.short_hash(job.id, i, "line"),
                    req.custom_id,
                    status_code=outcome.status_code,
                    body=outcome.body,
                )
                (ok_lines if outcome.ok else err_lines).append(wire.dumps(line))
            result: dict[str, Any] = {}
            for key, lines, suffix in (
                ("output_file", ok_lines, "result"),
                ("error_file", err_lines, "error"),
            ):
                if key == "output_file" and BATCH_MISSING_OUTPUT in job.faults:
                    continue  # injected fault: the successes' file never appears
                if lines:
                    f = self.engine.add_file(
                        self.ns,
                        b"\n".join(lines) + b"\n",
                        filename=f"{job.id}_{suffix}.jsonl",
                        purpose="batch",
                    )
                    f.fault_key = (self.ns, job.serial, suffix)
                    self.file_kinds[f.id] = (f"batch_{suffix}", "mistral")
                    result[key] = f.id
            job.output = result
            return result

    # -- jobs: endpoints -------------------------------------------------------------------
    def find(self, request: Request) -> SandboxBatch | None:
        return self.engine.get_batch(self.ns, request.path_params["job_id"])

    async def retrieve_job(self, request: Request) -> Response:
        job = self.find(request)
        if job is None:
            return self.not_found("Batch job", request.path_params["job_id"])
        return self.json(self.job_object(job))

    async def cancel_job(self, request: Request) -> Response:
        job = self.find(request)
        if job is None:
            return self.not_found("Batch job", request.path_params["job_id"])
        self.engine.cancel(job)  # idempotent; a no-op once the job has ended
        return self.json(self.job_object(job))

    async def delete_job(self, request: Request) -> Response:
        job = self.find(request)
        if job is None:
            return self.not_found("Batch job", request.path_params["job_id"])
        with self.engine.lock:
            job.deleted = True
        return self.json({"id": job.id, "object": "batch", "deleted": True})

    async def list_jobs(self, request: Request) -> Response:
        q = request.query_params
        page, size = _paging(q.get("page"), q.get("page_size"))
        if page is None or size is None:
            return self.error(422, "page and page_size must be non-negative integers")
        order = q.get("order_by", "-created")
        if order not in ("created", "-created"):
            return self.error(422, "order_by: expected 'created' or '-created'", param="order_by")
        wanted_status = set(q.getlist("status"))
        model = q.get("model")
        jobs = self.engine.list_batches(self.ns)  # oldest first
        if order == "-created":
            jobs.reverse()
        objects = [self.job_object(j) for j in jobs]
        objects = [
            o
            for o in objects
            if (not wanted_status or o["status"] in wanted_status)
            and (model is None or o["model"] == model)
        ]
        page_data = objects[page * size : (page + 1) * size]
        return self.json({"data": page_data, "object": "list", "total": len(objects)})

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/v1/files", g(self.create_file), methods=["POST"]),
            Route("/v1/files", g(self.list_files), methods=["GET"]),
            Route("/v1/files/{file_id}", g(self.retrieve_file), methods=["GET"]),
            Route("/v1/files/{file_id}", g(self.delete_file), methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", g(self.file_content), methods=["GET"]),
            Route("/v1/batch/jobs", g(self.create_job), methods=["POST"]),
            Route("/v1/batch/jobs", g(self.list_jobs), methods=["GET"]),
            Route("/v1/batch/jobs/{job_id}", g(self.retrieve_job), methods=["GET"]),
            Route("/v1/batch/jobs/{job_id}", g(self.delete_job), methods=["DELETE"]),
            Route("/v1/batch/jobs/{job_id}/cancel", g(self.cancel_job), methods=["POST"]),
        ]


def _paging(page_raw: str | None, size_raw: str | None) -> tuple[int | None, int | None]:
    try:
        page = int(page_raw or 0)
        size = int(size_raw or 100)
    except ValueError:
        return None, None
    if page < 0 or size < 1:
        return None, None
    return page, size


def _parse_input(lines: list[bytes]) -> tuple[list[_Request], list[dict[str, Any]]]:
    """Requests of a job's input, and the job-level errors that fail it (empty: valid).

    Errors are Mistral's ``{message, count}`` pairs: one per distinct problem, with how often it
    occurred.
    """
    requests: list[_Request] = []
    problems: dict[str, int] = {}
    seen: set[str] = set()

    def fail(message: str) -> None:
        if message in problems or len(problems) < MAX_REPORTED_ERRORS:
            problems[message] = problems.get(message, 0) + 1

    numbered = [(n, raw) for n, raw in enumerate(lines, 1) if raw.strip()]
    if not numbered:
        fail("The batch input is empty.")
    if len(numbered) > MAX_REQUESTS:
        fail(f"A batch job holds at most {MAX_REQUESTS} requests.")
        numbered = []
    for number, raw in numbered:
        try:
            parsed = codec.decode_input_line(raw, index=len(requests))
        except codec.WireError as exc:
            fail(f"Invalid line {number}: {exc.message}")
            continue
        if parsed.custom_id in seen:
            fail(f"Duplicate custom_id {json.dumps(parsed.custom_id)} on line {number}.")
            continue
        seen.add(parsed.custom_id)
        requests.append(_Request(len(requests), parsed.custom_id, parsed.body))
    if problems:
        return [], [{"message": m, "count": c} for m, c in problems.items()]
    return requests, []


def mistral_routes(engine: SandboxEngine, *, namespace: str = NAMESPACE) -> list[BaseRoute]:
    """The Mistral Files and Batch Jobs routes over ``engine`` (mount them at ``/mistral``)."""
    return _Api(engine, namespace).routes()
