"""The sandbox's Gemini Developer API batch mode, on top of the shared SandboxEngine.

Mounted at ``/gemini`` (clients use ``base_url = <server>/gemini``); every route is served under
both ``/v1`` (the google-genai SDK's default API version) and ``/v1beta`` (the REST docs'), with the
paths the installed SDK calls:

- ``POST {v}/models/{model}:batchGenerateContent`` (inline ``requests`` or an input ``fileName``),
  ``GET {v}/batches`` (``pageSize``/``pageToken`` -> ``{operations, nextPageToken}``, newest first),
  ``GET|DELETE {v}/batches/{id}``, ``POST {v}/batches/{id}:cancel``;
- resumable upload: ``POST upload/{v}/files`` (``X-Goog-Upload-Command: start``) answers with an
  absolute ``x-goog-upload-url``; ``POST`` there with ``upload[, finalize]`` chunks; the final reply
  carries ``x-goog-upload-status: final`` and ``{"file": {...}}``;
- ``GET|DELETE {v}/files/{id}``, ``GET {v}/files/{id}:download?alt=media`` (also under
  ``download/{v}/...``, as the REST docs show) returning raw JSONL.

Engine states map to ``BATCH_STATE_*``: validating -> PENDING; in_progress, finalizing and
cancelling -> RUNNING (Gemini has no cancelling state); completed -> SUCCEEDED; failed -> FAILED;
cancelled -> CANCELLED; expired -> EXPIRED. Gemini jobs expire after 48 h pending or running; the
sandbox uses the engine's ``expiry_seconds`` (24 h by default, shared by every provider), so build
the engine with ``expiry_seconds=2 * DAY`` (:data:`EXPIRY_SECONDS`) for Gemini's window. Output: inline jobs get ``inlinedResponses`` in
``metadata.output`` (mirrored in ``response``), file jobs a generated responses file. Cancelled jobs
carry an entry for every request: the responses of those run before the cancel or the expiry, a
CANCELLED / DEADLINE_EXCEEDED status for the others (UNVERIFIED: the docs only say an expired job
has no results; this emulates the per-request outcome polybatch's contract wants); failed jobs carry
none. Invalid requests become per-request INVALID_ARGUMENT errors,
and ``engine.faults.item_error_rate`` injects per-request INTERNAL errors.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.api import ProviderApi, RouteKind
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine, SandboxFile
from polybatch.tokens import count_tokens

from . import codec, embeddings, webhook_sandbox

NAMESPACE = "gemini"
VERSIONS = ("v1", "v1beta")
#: inline create bodies above this are refused (Google's 20 MB request limit)
MAX_INLINE_BYTES = 20 * 1024 * 1024
#: input files above this are refused (the Files API limit)
MAX_FILE_BYTES = 2 * 1024 * 1024 * 1024
#: Gemini batch jobs expire after this long pending or running (pass it as the engine's
#: ``expiry_seconds`` for a realistic window)
EXPIRY_SECONDS = 48 * 3600
#: uploaded files are deleted after 48 h
FILE_TTL = 48 * 3600
_TERMINAL = TERMINAL_STATES
#: ended states whose jobs carry output: one entry per request, run or not
_WITH_OUTPUT = frozenset({"completed", "cancelled", "expired"})
#: the status object given to requests a cancel or the expiry stopped before they ran
_LEFTOVER: dict[str, dict[str, Any]] = {
    "cancelled": {
        "code": 1,
        "message": "The batch was cancelled before this request ran.",
        "status": "CANCELLED",
    },
    "expired": {
        "code": 4,
        "message": "The batch expired (48 h) before this request ran.",
        "status": "DEADLINE_EXCEEDED",
    },
}


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


#: the status word of an error when none is given
_REASONS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}


def check_request_body(request: Any) -> str | None:
    """Why the API would reject a GenerateContentRequest (its INVALID_ARGUMENT message), or None."""
    return codec.check_request(request)


def _type_url(version: str, name: str) -> str:
    # the SDK captured "v1main" on the v1 surface; v1beta names its own package
    package = "v1main" if version == "v1" else version
    return f"type.googleapis.com/google.ai.generativelanguage.{package}.{name}"


class GeminiSandbox(ProviderApi):
    """The route handlers, bound to one engine."""

    namespace = NAMESPACE
    request_id_header = ""

    def __init__(self, engine: SandboxEngine) -> None:
        super().__init__(engine)
        #: resumable upload sessions: upload id -> (file metadata, bytes received so far)
        self._uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        self._uploads_lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------
    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return codec.error_body(status, detail.get("reason") or _REASONS[status], message)

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"Batch batches/{ident} not found.")

    def presented_key(self, request: Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query_params.get("key")

    def denied(self, request: Request, presented: str | None) -> Response:
        if not presented:
            return self.error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API.",
            )
        return self.error(401, "API key not valid. Please pass a valid API key.")

    def _file(self, request: Request) -> SandboxFile | Response:
        file_id = request.path_params["file_id"]
        f = self.engine.get_file(NAMESPACE, file_id)
        if f is None or (f.expires_at is not None and f.expires_at <= self.engine.now()):
            return self.error(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
            )
        return f

    def _file_view(self, f: SandboxFile, request: Request, version: str) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
        view: dict[str, Any] = {
            "name": f"files/{f.id}",
            "displayName": f.filename,
            "mimeType": f.purpose,
            "sizeBytes": str(len(f.data)),
            "createTime": _rfc3339(f.created_at),
            "updateTime": _rfc3339(f.created_at),
            "expirationTime": _rfc3339(f.expires_at),
            "sha256Hash": hashlib.sha256(f.data).hexdigest(),
            "uri": f"{base}/{version}/files/{f.id}",
            "state": "ACTIVE",
            "source": "GENERATED" if f.filename.startswith("batch-") else "UPLOADED",
        }
        if view["source"] == "GENERATED":
            view["downloadUri"] = f"{base}/download/{version}/files/{f.id}:download?alt=media"
        return view

    # -- running requests -------------------------------------------------------------------
    def _run(
        self, entry: dict[str, Any], batch_id: str, model: str, embed: bool = False
    ) -> dict[str, Any]:
        """One request's outcome: ``{"response": ...}`` or ``{"error": status}``; ``embed``: an
        embedding batch's request (:mod:`.embeddings`)."""
        request = entry["request"]
        problem = (embeddings.check_request if embed else codec.check_request)(request)
        if problem is not None:
            return {"error": {"code": 3, "message": problem, "status": "INVALID_ARGUMENT"}}
        if self.item_fails(batch_id, entry["key"]):
            return {
                "error": {
                    "code": 13,
                    "message": "Internal error encountered (injected fault).",
                    "status": "INTERNAL",
                }
            }
        if embed:
            text = embeddings.text_of(request)
            values = self.engine.model.embed(
                model=model, text=text, dimensions=embeddings.dimensions(request)
            )
            tokens = self.engine.model.embedding_tokens(text)
            return {"response": embeddings.response(values, tokens)}
        return {"response": self._respond(request, batch_id, entry["key"], model)}

    def _respond(
        self, request: dict[str, Any], batch_id: str, key: str, model: str
    ) -> dict[str, Any]:
        config = codec.generation_config(request)
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        json_mode = config.get("responseMimeType") == "application/json"
        turns = codec.conversation(request)
        reply = self.engine.model.chat(
            model=model,
            messages=turns,
            max_tokens=config.get("maxOutputTokens"),
            json_schema=schema if isinstance(schema, dict) else None,
            json_object=json_mode and not schema,
            stop=config.get("stopSequences"),
        )
        usage: dict[str, Any] = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": reply.completion_tokens,
            "totalTokenCount": reply.prompt_tokens + reply.completion_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
        }
        # a cachedContent reference: its (system) tokens count as a cache hit, inside the prompt
        if request.get("cachedContent") and turns and turns[0][0] == "system":
            cached = min(count_tokens(turns[0][1]) + 4, reply.prompt_tokens)
            usage["cachedContentTokenCount"] = cached
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
        else:
            # implicit caching: a repeated long prefix is a cache hit (no cache-write charge)
            scope = (self.ns, model)
            hit = self.engine.model.cache.automatic(scope, turns, length=reply.prompt_tokens).read
            if hit:
                usage["cachedContentTokenCount"] = hit
                usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": hit}]
        # thinking: a positive budget spends tokens on thoughts, billed as output
        thinking = config.get("thinkingConfig") or {}
        budget = thinking.get("thinkingBudget") if isinstance(thinking, dict) else None
        if isinstance(budget, int) and budget > 0:
            thoughts = min(budget, 8 + reply.prompt_tokens % 17)
            usage["thoughtsTokenCount"] = thoughts
            usage["totalTokenCount"] += thoughts
        digest = hashlib.sha256(f"{batch_id}/{key}".encode()).hexdigest()
        return {
            "candidates": [
                {
                    "content": {"parts": [{"text": reply.text}], "role": "model"},
                    "finishReason": "MAX_TOKENS" if reply.finish_reason == "length" else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": digest[:22],
        }

    def _outcomes(self, batch: SandboxBatch) -> list[dict[str, Any]]:
        """Output entries of an ended batch (``{key, response|error}``), computed once."""
        out: list[dict[str, Any]] = self.output_once(batch, lambda: self._output(batch))["lines"]
        return out

    def _output(self, batch: SandboxBatch) -> dict[str, Any]:
        """The entries of an ended batch, and the responses file of a file-input job."""
        now = self.engine.now()
        state = batch.state(now)
        if state not in _WITH_OUTPUT:
            return {"lines": []}
        done = batch.processed(now)
        leftover = _LEFTOVER.get(state)
        lines = [
            {"key": entry["key"], **(batch.outcome(i) if i < done else {"error": leftover})}
            for i, entry in enumerate(batch.requests)
        ]
        output: dict[str, Any] = {"lines": lines}
        if batch.extra.get("input_file"):
            f = self.write_output(
                batch,
                "responses",
                [wire.dumps(line) for line in lines],
                successes=False,  # Gemini's output is never missing: no fault applies
                filename=f"batch-{batch.id}-responses",
                purpose="application/jsonl",
                prefix="batch-",
                expires_after=FILE_TTL,
            )
            if f is not None:
                output["file"] = f.id
        return output

    def _counts(self, batch: SandboxBatch, now: float) -> dict[str, str]:
        n = len(batch.requests)
        done = batch.processed(now)
        ok = failed = 0
        for i in range(done):
            if "error" in batch.outcome(i):
                failed += 1
            else:
                ok += 1
        return {
            "requestCount": str(n),
            "successfulRequestCount": str(ok),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(n - done),
        }

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        return self._view(batch, request.path_params["version"])

    def _view(self, batch: SandboxBatch, version: str) -> dict[str, Any]:
        """The batch as the API returns it: an Operation whose metadata is the batch."""
        now = self.engine.now()
        state = batch.state(now)
        # the embeddings resource's type name is UNVERIFIED (the SDK reads no @type)
        kind = "EmbedContentBatch" if batch.extra.get("embed") else "GenerateContentBatch"
        meta: dict[str, Any] = {
            "@type": _type_url(version, kind),
            "model": batch.extra["model"],
            "displayName": batch.metadata.get("displayName", ""),
            "inputConfig": batch.extra["input_config"],
            "state": codec.REPORTED_STATES[state],
            "createTime": _rfc3339(batch.created_at),
            "updateTime": _rfc3339(batch.ended_at(now) or now),
            "batchStats": self._counts(batch, now),
        }
        if "priority" in batch.extra:
            meta["priority"] = batch.extra["priority"]
        view: dict[str, Any] = {"name": f"batches/{batch.id}", "metadata": meta}
        if state in _TERMINAL:
            meta["endTime"] = _rfc3339(batch.ended_at(now))
            view["done"] = True
            lines = self._outcomes(batch)
            output: dict[str, Any] | None = None
            if state in _WITH_OUTPUT:
                assert batch.output is not None
                if "file" in batch.output:
                    output = {"responsesFile": f"files/{batch.output['file']}"}
                else:
                    output = {
                        "inlinedResponses": {
                            "inlinedResponses": [
                                {
                                    **{k: v for k, v in line.items() if k != "key"},
                                    "metadata": batch.requests[i].get("metadata")
                                    or {"key": line["key"]},
                                }
                                for i, line in enumerate(lines)
                            ]
                        }
                    }
            if output is not None:
                meta["output"] = output
                view["response"] = {
                    "@type": _type_url(version, f"{kind}Output"),
                    **output,
                }
            if state == "failed":
                errors = batch.errors or [{"message": "the batch failed"}]
                view["error"] = {"code": 3, "message": str(errors[0].get("message"))}
            elif state == "cancelled":
                view["error"] = {"code": 1, "message": "The batch was cancelled."}
            elif state == "expired":
                view["error"] = {"code": 4, "message": "The batch expired before it finished."}
        return view

    # -- batches ----------------------------------------------------------------------------
    async def create_embeddings(self, request: Request) -> Response:
        """``POST models/{model}:asyncBatchEmbedContent`` (the SDK's create_embeddings)."""
        return await self.create(request, embed=True)

    async def create(self, request: Request, embed: bool = False) -> Response:
        """``POST models/{model}:batchGenerateContent`` (or, with ``embed``, an embedding batch:
        input from a file only, as the sandbox emulates it)."""
        version = request.path_params["version"]
        model = request.path_params["model"]
        if not self.knows_model(model):  # Gemini's 404 for a model it does not serve
            return self.error(
                404,
                f"models/{model} is not found for API version {version}, or is not supported "
                "for batchGenerateContent. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        body = await request.body()
        if len(body) > MAX_INLINE_BYTES:
            return self.error(
                400,
                f"Request payload size exceeds the limit: {MAX_INLINE_BYTES} bytes.",
            )
        try:
            payload = json.loads(body)
        except ValueError:
            return self.error(400, "Invalid JSON payload received.")
        batch_in = payload.get("batch") if isinstance(payload, dict) else None
        if not isinstance(batch_in, dict):
            return self.error(400, "* BatchGenerateContentRequest.batch: required")
        config = batch_in.get("inputConfig")
        if not isinstance(config, dict):
            return self.error(400, "* batch.input_config: input_config is required")
        entries: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] | None = None
        input_file: str | None = None
        # the SDK sends fileName for batchGenerateContent, file_name for asyncBatchEmbedContent
        # (protobuf JSON takes both spellings)
        file_field = config.get("fileName", config.get("file_name"))
        if file_field is not None:
            name = str(file_field)
            input_file = name.removeprefix("files/")
            f = self.engine.get_file(NAMESPACE, input_file)
            if f is None:
                return self.error(400, f"* batch.input_config.file_name: {name} not found")
            # a malformed input file fails the batch as a whole (after creation, as Google does)
            for n, raw in enumerate(f.data.splitlines(), 1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                    if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
                        raise ValueError("a line needs a 'request' object")
                except ValueError as exc:
                    errors = [{"line": n, "message": f"input file line {n}: {exc}"}]
                    break
                entries.append({"key": str(line.get("key", n - 1)), "request": line["request"]})
        elif embed:
            return self.error(
                400, "* batch.input_config: the sandbox takes embedding batches from a file only"
            )
        else:
            requests = (config.get("requests") or {}).get("requests")
            if not isinstance(requests, list) or not requests:
                return self.error(
                    400,
                    "* batch.input_config.requests.requests: at least one request is required",
                )
            for i, r in enumerate(requests):
                if not isinstance(r, dict) or not isinstance(r.get("request"), dict):
                    return self.error(
                        400,
                        f"* batch.input_config.requests.requests[{i}].request: required",
                    )
                metadata = r.get("metadata") if isinstance(r.get("metadata"), dict) else None
                key = (metadata or {}).get("key", str(i))
                entries.append({"key": str(key), "request": r["request"], "metadata": metadata})
        if errors is None and not entries:
            errors = [{"message": "the input file holds no requests"}]
        model_name = model.removeprefix("models/")
        refused = None if errors else self.queue_refusal(entries, model_name)
        if refused is not None:  # the project's batch queue for the model is full
            return self.error(429, refused)
        batch = self.new_batch(
            entries,
            lambda entry, b: self._run(entry, b.id, model_name, embed),
            prefix="b",
            metadata={"displayName": str(batch_in.get("displayName") or "")},
            extra={
                "model": f"models/{model_name}",
                "input_config": config
                if input_file
                else {"requests": {"requests": [{"metadata": e["metadata"]} for e in entries]}},
                "input_file": input_file,
                "embed": embed,
                **({"priority": batch_in["priority"]} if "priority" in batch_in else {}),
            },
            errors=errors,
            queue_model=model_name,
        )
        return self.json(self._view(batch, version))

    async def list_batches(self, request: Request) -> Response:
        """``GET batches`` (newest first, ``pageSize`` up to 1000, ``pageToken`` from the reply)."""
        version = request.path_params["version"]
        try:
            size = int(request.query_params.get("pageSize", "50"))
        except ValueError:
            return self.error(400, "pageSize must be an integer")
        size = 50 if size <= 0 else min(size, 1000)
        newest = list(reversed(self.engine.list_batches(NAMESPACE)))
        start = 0
        token = request.query_params.get("pageToken")
        if token:
            ids = [b.id for b in newest]
            if token not in ids:
                return self.error(400, "Invalid page token.")
            start = ids.index(token)
        page = newest[start : start + size]
        body: dict[str, Any] = {"operations": [self._view(b, version) for b in page]}
        if start + size < len(newest):
            body["nextPageToken"] = newest[start + size].id
        return self.json(body)

    async def delete_batch(self, request: Request) -> Response:
        """``DELETE`` a batch (allowed in any state; it does not cancel)."""
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        found.deleted = True
        return self.json({})

    async def cancel_batch(self, request: Request) -> Response:
        """``POST batches/{id}:cancel``: start cancelling (a no-op once ended)."""
        response = await super().cancel_batch(request)
        return response if response.status_code != 200 else self.json({})

    # -- files ------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        """Both legs of the resumable upload protocol on ``upload/{v}/files``."""
        upload_id = request.query_params.get("upload_id")
        # the upload URL's id is the session's credential: the SDK sends no key on that leg
        denied = self.guard(request) if upload_id is None else None
        if denied is not None:
            return denied
        version = request.path_params["version"]
        command = request.headers.get("x-goog-upload-command", "").lower()
        if upload_id is None:
            if command != "start" or request.headers.get("x-goog-upload-protocol") != "resumable":
                return self.error(400, "only resumable uploads are supported")
            try:
                payload = json.loads(await request.body() or b"{}")
            except ValueError:
                return self.error(400, "Invalid JSON payload received.")
            meta = dict(payload.get("file") or {}) if isinstance(payload, dict) else {}
            size = int(request.headers.get("x-goog-upload-header-content-length", "0") or 0)
            if size > MAX_FILE_BYTES:
                return self.error(400, "File size exceeds the 2 GB limit.")
            meta.setdefault(
                "mimeType", request.headers.get("x-goog-upload-header-content-type", "")
            )
            new_id = secrets.token_urlsafe(24)
            with self._uploads_lock:
                self._uploads[new_id] = (meta, bytearray())
            url = str(request.url_for(f"gemini_upload_{version}"))
            return Response(
                b"",
                headers={
                    "x-goog-upload-url": f"{url}?upload_id={new_id}&upload_protocol=resumable",
                    "x-goog-upload-status": "active",
                    "x-goog-upload-chunk-granularity": str(8 * 1024 * 1024),
                },
            )
        with self._uploads_lock:
            session = self._uploads.get(upload_id)
        if session is None:
            return self.error(404, "unknown upload session")
        meta, data = session
        chunk = await request.body()
        offset = int(request.headers.get("x-goog-upload-offset", "0") or 0)
        if offset != len(data):
            return self.error(400, f"expected offset {len(data)}, got {offset}")
        data.extend(chunk)
        if len(data) > MAX_FILE_BYTES:
            return self.error(400, "File size exceeds the 2 GB limit.")
        if "finalize" not in command:
            return Response(b"", headers={"x-goog-upload-status": "active"})
        with self._uploads_lock:
            self._uploads.pop(upload_id, None)
        f = self.engine.add_file(
            NAMESPACE,
            bytes(data),
            filename=str(meta.get("displayName") or meta.get("display_name") or ""),
            purpose=str(meta.get("mimeType") or meta.get("mime_type") or ""),
            prefix="f",
            expires_after=FILE_TTL,
        )
        return self.json(
            {"file": self._file_view(f, request, version)},
            headers={"x-goog-upload-status": "final"},
        )

    async def file(self, request: Request) -> Response:
        """``GET`` a file's metadata."""
        found = self._file(request)
        if isinstance(found, Response):
            return found
        return self.json(self._file_view(found, request, request.path_params["version"]))

    async def delete_file(self, request: Request) -> Response:
        """``DELETE`` a file."""
        found = self._file(request)
        if isinstance(found, Response):
            return found
        with self.engine.lock:
            self.engine.files.pop(found.id, None)
        return self.json({})

    async def download(self, request: Request) -> Response:
        """``files/{id}:download?alt=media``: the bytes of a generated file."""
        if request.query_params.get("alt") != "media":
            return self.error(400, "download needs alt=media")
        found = self._file(request)
        if isinstance(found, Response):
            return found
        if not found.filename.startswith("batch-"):
            return self.error(400, "Only generated files can be downloaded.")
        return Response(found.data, media_type="application/jsonl")

    def webhook_event(self, batch: SandboxBatch, state: str) -> Any:
        return webhook_sandbox.batch_event(batch, state)

    async def create_webhook(self, request: Request) -> Response:
        return await webhook_sandbox.create_webhook(self, request)

    def routes(self) -> list[BaseRoute]:
        K = RouteKind
        out: list[BaseRoute] = []
        for v in VERSIONS:
            # one handler serves both API versions: the route sets path_params["version"]
            r = functools.partial(self.route, version=v)
            # ":action" routes first: "{batch_id}" alone would also match "id:cancel"
            one, f = f"/{v}/batches/{{batch_id}}", f"/{v}/files/{{file_id}}"
            out += [
                r(f"/{v}/models/{{model}}:batchGenerateContent", self.create, ["POST"], K.CREATE),
                r(
                    f"/{v}/models/{{model}}:{embeddings.CREATE_VERB}",
                    self.create_embeddings,
                    ["POST"],
                    K.CREATE,
                ),
                r(f"/{v}/batches", self.list_batches, ["GET"], K.LIST),
                r(f"/{v}/webhooks", self.create_webhook, ["POST"], K.OTHER),
                r(one + ":cancel", self.cancel_batch, ["POST"], K.CANCEL),
                r(one, self.retrieve_batch, ["GET"], K.POLL),
                r(one, self.delete_batch, ["DELETE"], K.DELETE),
                # the upload URL's id is the session's credential: upload() guards the first leg
                r(
                    f"/upload/{v}/files",
                    self.upload,
                    ["POST"],
                    K.UPLOAD,
                    name=f"gemini_upload_{v}",
                    guarded=False,
                ),
                r(f + ":download", self.download, ["GET"], K.DOWNLOAD),
                r(f"/download/{v}/files/{{file_id}}:download", self.download, ["GET"], K.DOWNLOAD),
                r(f, self.file, ["GET"], K.POLL),
                r(f, self.delete_file, ["DELETE"], K.DELETE),
            ]
        return out


def routes(engine: SandboxEngine) -> list[BaseRoute]:
    """Starlette routes of the emulated batch API, under ``/v1`` and ``/v1beta``."""
    return GeminiSandbox(engine).routes()
