"""The emulated Mistral Files and Batch Jobs API, on top of the shared SandboxEngine.

Mounted by the sandbox server at ``/mistral``; the SDK is pointed there with
``server_url={server}/mistral`` and appends the paths it calls (``/v1/files``, ``/v1/batch/jobs``,
...), which are the routes below. The job lifecycle comes from the engine's clock; this module only
translates it to Mistral's wire shapes (upper-case statuses, ``*_requests`` counts, ``output_file``
and ``error_file``) and answers each request with the engine's SyntheticModel.

Per-request problems (bad parameters, injected faults) become lines of the job's error file;
whole-file problems (no lines, broken JSON, duplicate custom_ids) fail the job with ``errors``.
A cancelled or timed-out job writes lines only for the requests it ran.

The Files routes are the core's :class:`~polybatch.sandbox.files_api.FilesApi` with Mistral's
purposes, file object and page-number lists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.api import BatchRequest, Outcome, RouteKind, number_page, refusal
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine, SandboxFile
from polybatch.sandbox.files_api import FilesApi

from . import codec, embeddings

NAMESPACE = "mistral"
MAX_REQUESTS = 1_000_000
#: the SDK's files.upload docstring: "individual files can be a maximum of 512 MB"
MAX_FILE_BYTES = 512 * 1024 * 1024
#: job-level validation stops collecting after this many distinct error messages
MAX_REPORTED_ERRORS = 100
UPLOAD_PURPOSES = frozenset({"fine-tune", "batch", "ocr", "agentic_safety"})
#: the SDK's APIEndpoint literals: what a job may name (the sandbox runs RUN_ENDPOINTS only)
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
#: the endpoints whose jobs the sandbox answers
RUN_ENDPOINTS = frozenset({codec.CHAT_ENDPOINT, embeddings.EMBEDDINGS_ENDPOINT})
#: bounds of ``timeout_hours``; Mistral documents the default (24), not the range (UNVERIFIED)
TIMEOUT_HOURS_RANGE = (1, 168)


def check_request_body(body: Mapping[str, Any], job_model: str | None = None) -> str | None:
    """Why a request's ``body`` would be refused (its error line's message), or None: the
    codec's :func:`~polybatch_mistral.codec.check_body`, the rules the adapter validates with."""
    return refusal(lambda: codec.check_body(body, job_model=job_model), codec.WireError)


class MistralApi(FilesApi):
    """Mistral's Files and Batch Jobs routes over one engine."""

    namespace = NAMESPACE
    upload_purposes = UPLOAD_PURPOSES
    default_purpose = "fine-tune"
    default_filename = "upload.jsonl"
    content_offset = False
    batch_param = "job_id"
    batch_noun = "Batch job"

    def __init__(self, engine: SandboxEngine, namespace: str = NAMESPACE) -> None:
        super().__init__(engine, namespace)
        #: generated files -> (sample_type, source) of their file object
        self.file_kinds: dict[str, tuple[str, str]] = {}

    # -- plumbing --------------------------------------------------------------------------
    def request_id(self) -> str:
        return self.engine.new_id("")

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return codec.error_body(message, **detail)

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"{what} {ident} not found", type="not_found_error")

    def denied(self, request: Request, presented: str | None) -> Response:
        # Mistral answers a bad key with a bare 401 "Unauthorized"; never echo the key
        return self.json({"message": "Unauthorized", "request_id": ""}, 401)

    # -- files -----------------------------------------------------------------------------
    def file_object(self, f: SandboxFile) -> dict[str, Any]:
        default = ("batch_request" if f.purpose == "batch" else "instruct", "upload")
        sample_type, source = self.file_kinds.get(f.id, default)
        return {
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

    def retrieved_file_object(self, f: SandboxFile) -> dict[str, Any]:
        return {**self.file_object(f), "deleted": False}

    def bad_purpose(self, purpose: object) -> Response:
        return self.error(
            422,
            f"purpose: {purpose!r} is not one of {', '.join(sorted(UPLOAD_PURPOSES))}",
            param="purpose",
        )

    def missing_file(self) -> Response:
        return self.error(422, "file: field required", param="file")

    def upload_expiry(self, form: FormData, purpose: str) -> int | Response | None:
        expiry_raw = form.get("expiry")
        if expiry_raw in (None, ""):
            return None
        try:
            expires_after = int(str(expiry_raw)) * 3600  # hours, at Mistral
        except ValueError:
            return self.error(422, "expiry: expected an integer", param="expiry")
        if expires_after <= 0:
            return self.error(422, "expiry: expected a positive integer", param="expiry")
        return expires_after

    def check_upload(self, purpose: str, filename: str, data: bytes) -> Response | None:
        if len(data) > MAX_FILE_BYTES:
            return self.error(400, "File too large: the maximum size is 512 MB.", param="file")
        if purpose == "batch" and not filename.endswith(".jsonl"):
            return self.error(400, "Batch files must be .jsonl files.", param="file")
        return None

    def files_page(self, request: Request, files: list[SandboxFile]) -> Response:
        q = request.query_params
        page, size = _paging(q.get("page"), q.get("page_size"))
        if page is None or size is None:
            return self.error(422, "page and page_size must be non-negative integers")
        newest = files[::-1]  # newest first; the store keeps creation order
        data = [self.file_object(f) for f in number_page(newest, page, size)]
        return self.json({"data": data, "object": "list", "total": len(files)})

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
        if endpoint not in RUN_ENDPOINTS:
            return self.error(
                400,
                f"the sandbox runs only {' and '.join(sorted(RUN_ENDPOINTS))} jobs",
                param="endpoint",
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
        job = self.new_batch(
            self.number_attempts(requests),
            self.run,
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
        return self.json(self.job_object(job))

    # -- jobs: running one request ---------------------------------------------------------
    def run(self, req: BatchRequest, job: SandboxBatch) -> Outcome:
        """Answer one request: a 400 for invalid params, an injected 500, a completion or (in an
        embeddings job) vectors."""
        embedding = job.extra["endpoint"] == embeddings.EMBEDDINGS_ENDPOINT
        parse = embeddings.parse_body if embedding else codec.check_body
        try:
            parsed = parse(req.body, job_model=job.extra.get("model"))
        except codec.WireError as exc:
            return Outcome(400, codec.error_body(exc.message, code=exc.code, param=exc.param))
        if self.item_fails(req.custom_id, req.attempt):
            body = codec.error_body(
                "Internal server error", type="internal_server_error", code="3000"
            )
            return Outcome(500, body)
        if isinstance(parsed, embeddings.EmbeddingRequest):
            return self.embed(parsed, job)
        chat = parsed
        rf_type = (chat.response_format or {}).get("type")
        reply = self.engine.model.chat(
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
        return Outcome(200, body)

    def embed(self, emb: embeddings.EmbeddingRequest, job: SandboxBatch) -> Outcome:
        """An embeddings response: one vector per input, input tokens only."""
        body, tokens = self.engine.model.embeddings_list(
            model=emb.model,
            texts=emb.inputs,
            dimensions=emb.dimensions,
            encoding_format=emb.encoding_format,
        )
        return Outcome(
            200, {"id": codec.short_hash(job.id, "embed", *emb.inputs), **body}, (tokens, 0)
        )

    # -- jobs: the object ------------------------------------------------------------------
    def batch_view(self, batch: SandboxBatch, request: Request) -> Any:
        return self.job_object(batch)

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
            "status": codec.STATUS[state],
            "created_at": int(job.created_at),
            "total_requests": len(job.requests),
            "completed_requests": t["ok"] + t["failed"],
            "succeeded_requests": t["ok"],
            "failed_requests": t["failed"],
            "started_at": int(started) if started is not None else None,
            "completed_at": int(ended) if ended is not None else None,
        }

    def outputs(self, job: SandboxBatch, now: float) -> dict[str, Any]:
        """The output and error files, written once when the job is first seen terminal."""
        return self.output_once(job, lambda: self.write_files(job, now), none_if_failed=True)

    def write_files(self, job: SandboxBatch, now: float) -> dict[str, Any]:
        """Write an ended job's output and error files; their ids by job-object key."""
        ok_lines: list[bytes] = []
        err_lines: list[bytes] = []
        # requests a cancelled or timed-out job never ran get no line at all
        for i in range(job.processed(now)):
            req: BatchRequest = job.requests[i]
            outcome: Outcome = job.outcome(i)
            line = codec.response_line(
                codec.short_hash(job.id, i, "line"),
                req.custom_id,
                status_code=outcome.status_code,
                body=outcome.body,
            )
            (ok_lines if outcome.ok else err_lines).append(wire.dumps(line))
        files = self.write_outputs(
            job,
            [("output_file", "result", ok_lines), ("error_file", "error", err_lines)],
            purpose="batch",
        )
        for suffix, f in (
            ("result", files.get("output_file")),
            ("error", files.get("error_file")),
        ):
            if f is not None:
                self.file_kinds[f.id] = (f"batch_{suffix}", "mistral")
        result: dict[str, Any] = {key: f.id for key, f in files.items()}
        return result

    # -- jobs: endpoints -------------------------------------------------------------------
    async def delete_job(self, request: Request) -> Response:
        job = self.batch_or_404(request)
        if isinstance(job, Response):
            return job
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
        r, base, K = self.route, "/v1/batch/jobs", RouteKind
        return [
            *self.file_routes(),
            r(base, self.create_job, ["POST"], K.CREATE),
            r(base, self.list_jobs, ["GET"], K.LIST),
            r(base + "/{job_id}", self.retrieve_batch, ["GET"], K.POLL),
            r(base + "/{job_id}", self.delete_job, ["DELETE"], K.DELETE),
            r(base + "/{job_id}/cancel", self.cancel_batch, ["POST"], K.CANCEL),
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


def _parse_input(lines: list[bytes]) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
    """Requests of a job's input, and the job-level errors that fail it (empty: valid).

    Errors are Mistral's ``{message, count}`` pairs: one per distinct problem, with how often it
    occurred.
    """
    requests: list[BatchRequest] = []
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
        requests.append(BatchRequest(len(requests), parsed.custom_id, parsed.body))
    if problems:
        return [], [{"message": m, "count": c} for m, c in problems.items()]
    return requests, []


def mistral_routes(engine: SandboxEngine, *, namespace: str = NAMESPACE) -> list[BaseRoute]:
    """The Mistral Files and Batch Jobs routes over ``engine`` (mount them at ``/mistral``)."""
    return MistralApi(engine, namespace).routes()
