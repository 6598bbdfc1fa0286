"""The sandbox's Vertex AI batch prediction API and the Cloud Storage subset its clients use.

Mounted at ``/vertex``: google-genai takes ``<server>/vertex`` as ``http_options.base_url`` and
google-cloud-storage takes it as its API endpoint (``client_options.api_endpoint``, or
``STORAGE_EMULATOR_HOST``). The paths are the ones the installed SDKs build:

- Vertex (google-genai 3.6, Vertex mode, ``v1`` and ``v1beta1``):
  ``POST|GET {v}/projects/{p}/locations/{l}/batchPredictionJobs`` (create; list with
  ``pageSize``/``pageToken``), ``GET|DELETE .../batchPredictionJobs/{id}``,
  ``POST .../batchPredictionJobs/{id}:cancel``; the key is the ``Authorization: Bearer`` token;
- Cloud Storage JSON API (google-cloud-storage 3.17): ``POST upload/storage/v1/b/{b}/o``
  (``uploadType=multipart``, or ``resumable`` then ``PUT`` chunks with ``Content-Range``),
  ``GET download/storage/v1/b/{b}/o/{name}?alt=media`` (with ``x-goog-hash``, so a cut download
  fails the client's checksum), ``GET storage/v1/b/{b}/o`` (list by ``prefix``) and
  ``GET|DELETE storage/v1/b/{b}/o/{name}``. Like an emulator it accepts anonymous requests,
  but a wrong token is refused.

Requests run through the Gemini sandbox's synthetic model (the same GenerateContentRequest).
Completed rows are exported continuously, as Vertex does: ``predictions.jsonl`` (successes) and
``errors.jsonl`` (rows with a ``status``) under ``outputInfo.gcsOutputDirectory`` always hold the
rows run so far, so a cancelled, expired or failed job keeps what ran before it ended. The
missing-output fault leaves ``predictions.jsonl`` out.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google_crc32c
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.api import RouteKind, bearer, cursor_page
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT
from polybatch_gemini.sandbox import GeminiSandbox

from . import codec

NAMESPACE = "vertex"
VERSIONS = ("v1", "v1beta1")
SANDBOX_PROJECT = "polybatch-sandbox"
SANDBOX_LOCATION = "us-central1"
SANDBOX_BUCKET = "polybatch-sandbox"
#: input files above this are refused (Vertex's 1 GB limit for a Gemini batch input file)
MAX_INPUT_BYTES = 1024 * 1024 * 1024


#: the ``error`` of a job that ended other than by succeeding
_ENDED_ERRORS: dict[str, Any] = {
    "failed": "the batch prediction job failed",
    "cancelled": {"code": 1, "message": "CANCELED"},
    "expired": {"code": 4, "message": "The batch prediction job expired."},
}


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StoredObject:
    """One Cloud Storage object."""

    bucket: str
    name: str
    data: bytes
    content_type: str
    generation: int
    created: float
    #: what download faults are keyed on (output files only)
    fault_key: tuple[Any, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def hashes(self) -> tuple[str, str]:
        """(crc32c, md5) base64-encoded, as Cloud Storage reports them."""
        crc = google_crc32c.value(self.data).to_bytes(4, "big")
        md5 = hashlib.md5(self.data, usedforsecurity=False).digest()
        return base64.b64encode(crc).decode(), base64.b64encode(md5).decode()


class VertexSandbox(GeminiSandbox):
    """The route handlers, bound to one engine; the synthetic replies are Gemini's."""

    namespace = NAMESPACE

    def __init__(self, engine: SandboxEngine) -> None:
        super().__init__(engine)
        self.objects: dict[tuple[str, str], StoredObject] = {}
        self._objects_lock = threading.RLock()
        self._generation = 0
        #: resumable upload sessions: id -> (bucket, name, content type, bytes so far)
        self._sessions: dict[str, tuple[str, str, str, bytearray]] = {}

    # -- keys and errors --------------------------------------------------------------------
    def presented_key(self, request: Request) -> str | None:
        return bearer(request)

    def denied(self, request: Request, presented: str | None) -> Response:
        return self.error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            reason="UNAUTHENTICATED",
        )

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"The BatchPredictionJob does not exist: {ident}.")

    def _storage_guard(self, request: Request) -> Response | None:
        """Anonymous requests pass (as an emulator's do); a wrong token does not."""
        presented = self.presented_key(request)
        if presented is None or self.engine.check_key(presented):
            return None
        return self.denied(request, presented)

    # -- Cloud Storage ----------------------------------------------------------------------
    def put_object(
        self, bucket: str, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> StoredObject:
        """Store an object (a new generation)."""
        with self._objects_lock:
            self._generation += 1
            obj = StoredObject(bucket, name, data, content_type, self._generation, self.now())
            self.objects[(bucket, name)] = obj
            return obj

    def _object_view(self, obj: StoredObject, request: Request) -> dict[str, Any]:
        root = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
        crc, md5 = obj.hashes()
        path = f"b/{obj.bucket}/o/{quote(obj.name, safe='')}"
        return {
            "kind": "storage#object",
            "id": f"{obj.bucket}/{obj.name}/{obj.generation}",
            "selfLink": f"{root}/storage/v1/{path}",
            "mediaLink": f"{root}/download/storage/v1/{path}?generation={obj.generation}&alt=media",
            "name": obj.name,
            "bucket": obj.bucket,
            "generation": str(obj.generation),
            "metageneration": "1",
            "contentType": obj.content_type,
            "storageClass": "STANDARD",
            "size": str(len(obj.data)),
            "md5Hash": md5,
            "crc32c": crc,
            "timeCreated": _rfc3339(obj.created),
            "updated": _rfc3339(obj.created),
        }

    def _object_or_404(self, request: Request) -> StoredObject | Response:
        """The object a request names (past the storage guard), or the refusal or 404."""
        refused = self._storage_guard(request)
        if refused is not None:
            return refused
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        self._export(bucket)
        with self._objects_lock:
            obj = self.objects.get((bucket, name))
        if obj is None:
            return self.error(404, f"No such object: {bucket}/{name}", reason="NOT_FOUND")
        return obj

    async def upload(self, request: Request) -> Response:
        """``POST upload/storage/v1/b/{bucket}/o``: a multipart upload or a resumable start."""
        refused = self._storage_guard(request)
        if refused is not None:
            return refused
        bucket = request.path_params["bucket"]
        kind = request.query_params.get("uploadType")
        body = await request.body()
        if kind == "multipart":
            try:
                meta, data = _multipart(request.headers.get("content-type", ""), body)
            except ValueError as exc:
                return self.error(400, f"malformed multipart upload: {exc}")
            name = str(meta.get("name") or request.query_params.get("name") or "")
            if not name:
                return self.error(400, "Required object name")
            obj = self.put_object(bucket, name, data, str(meta.get("contentType") or ""))
            return self.json(self._object_view(obj, request))
        if kind == "resumable":
            meta = json.loads(body or b"{}")
            name = str(meta.get("name") or request.query_params.get("name") or "")
            if not name:
                return self.error(400, "Required object name")
            session = secrets.token_urlsafe(16)
            content_type = request.headers.get("x-upload-content-type") or str(
                meta.get("contentType") or ""
            )
            with self._objects_lock:
                self._sessions[session] = (bucket, name, content_type, bytearray())
            location = f"{request.url}&upload_id={session}"
            return Response(b"", headers={"location": location})
        return self.error(400, f"uploadType {kind!r} is not supported by the sandbox")

    async def upload_chunk(self, request: Request) -> Response:
        """``PUT`` one chunk of a resumable upload (``Content-Range: bytes a-b/total``)."""
        session_id = request.query_params.get("upload_id", "")
        with self._objects_lock:
            session = self._sessions.get(session_id)
        if session is None:
            return self.error(404, "No such upload session", reason="NOT_FOUND")
        bucket, name, content_type, data = session
        chunk = await request.body()
        span, _, total = (
            request.headers.get("content-range", "").removeprefix("bytes ").partition("/")
        )
        if span and span != "*":
            start = int(span.split("-")[0])
            if start != len(data):
                return self.error(400, f"expected offset {len(data)}, got {start}")
            data.extend(chunk)
        if len(data) > MAX_INPUT_BYTES:
            return self.error(400, "The object exceeds the sandbox's 1 GB limit.")
        if total in ("", "*") or int(total) > len(data):
            headers = {"range": f"bytes=0-{len(data) - 1}"} if data else {}
            return Response(b"", status_code=308, headers=headers)
        with self._objects_lock:
            self._sessions.pop(session_id, None)
        obj = self.put_object(bucket, name, bytes(data), content_type)
        return self.json(self._object_view(obj, request))

    async def download(self, request: Request) -> Response:
        """``GET download/storage/v1/b/{bucket}/o/{name}?alt=media`` (also ``storage/v1/...``)."""
        found = self._object_or_404(request)
        if isinstance(found, Response):
            return found
        crc, md5 = found.hashes()
        return Response(
            self.deliver(found.data, found.fault_key),
            media_type=found.content_type or "application/octet-stream",
            headers={
                "x-goog-hash": f"crc32c={crc},md5={md5}",
                "x-goog-generation": str(found.generation),
                "x-goog-stored-content-length": str(len(found.data)),
            },
        )

    async def object_metadata(self, request: Request) -> Response:
        """``GET storage/v1/b/{bucket}/o/{name}``: the object resource (or its bytes)."""
        if request.query_params.get("alt") == "media":
            return await self.download(request)
        found = self._object_or_404(request)
        if isinstance(found, Response):
            return found
        return self.json(self._object_view(found, request))

    async def delete_object(self, request: Request) -> Response:
        """``DELETE storage/v1/b/{bucket}/o/{name}``."""
        found = self._object_or_404(request)
        if isinstance(found, Response):
            return found
        with self._objects_lock:
            self.objects.pop((found.bucket, found.name), None)
        return Response(b"", status_code=204)

    async def list_objects(self, request: Request) -> Response:
        """``GET storage/v1/b/{bucket}/o?prefix=&pageToken=&maxResults=``, by name."""
        refused = self._storage_guard(request)
        if refused is not None:
            return refused
        bucket = request.path_params["bucket"]
        prefix = request.query_params.get("prefix", "")
        size = min(int(request.query_params.get("maxResults", "1000") or 1000), 1000)
        token = request.query_params.get("pageToken", "")
        self._export(bucket)
        with self._objects_lock:
            names = sorted(
                n for b, n in self.objects if b == bucket and n.startswith(prefix) and n > token
            )
            page = [self.objects[(bucket, n)] for n in names[:size]]
        body: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [self._object_view(o, request) for o in page],
        }
        if len(names) > size:
            body["nextPageToken"] = page[-1].name
        return self.json(body)

    # -- continuous export ------------------------------------------------------------------
    def _export(self, bucket: str) -> None:
        """Write the rows each job of ``bucket`` has run so far into its output directory."""
        now = self.engine.now()
        for batch in self.engine.list_batches(NAMESPACE):
            out = batch.extra.get("output_dir")
            if out is None or out[0] != bucket or batch.extra.get("exported"):
                continue
            state = batch.state(now)
            done = batch.processed(now)
            if done == batch.extra.get("rows_exported") and state not in TERMINAL_STATES:
                continue
            ok: list[bytes] = []
            failed: list[bytes] = []
            for i in range(done):
                entry = batch.requests[i]
                row = codec.output_row(entry["key"], entry["request"], batch.outcome(i))
                (failed if row["status"] else ok).append(wire.dumps(row))
            files = [("errors", failed)]
            if BATCH_MISSING_OUTPUT not in batch.faults:
                files.insert(0, ("predictions", ok))
            for stem, lines in files:
                if lines:
                    obj = self.put_object(
                        bucket,
                        f"{out[1]}/{stem}.jsonl",
                        b"\n".join(lines) + b"\n",
                        "application/jsonl",
                    )
                    obj.fault_key = (NAMESPACE, batch.serial, stem)
            batch.extra["rows_exported"] = done
            batch.extra["exported"] = state in TERMINAL_STATES

    # -- batch prediction jobs --------------------------------------------------------------
    def _resource(self, batch: SandboxBatch) -> str:
        project, location = batch.extra["parent"]
        return f"projects/{project}/locations/{location}/batchPredictionJobs/{batch.id}"

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        return self._job(batch)

    def _job(self, batch: SandboxBatch) -> dict[str, Any]:
        """The BatchPredictionJob resource."""
        now = self.engine.now()
        state = batch.state(now)
        done = batch.processed(now)
        failed = sum("error" in batch.outcome(i) for i in range(done))
        view: dict[str, Any] = {
            "name": self._resource(batch),
            "displayName": batch.metadata.get("displayName", ""),
            "model": batch.extra["model"],
            "inputConfig": batch.extra["input_config"],
            "outputConfig": batch.extra["output_config"],
            "state": codec.REPORTED_STATES[state],
            "createTime": _rfc3339(batch.created_at),
            "updateTime": _rfc3339(batch.ended_at(now) or now),
            "completionStats": {
                "successfulCount": str(done - failed),
                "failedCount": str(failed),
                "incompleteCount": str(len(batch.requests) - done),
            },
        }
        if batch.errors is None and now >= batch.started_at:
            view["startTime"] = _rfc3339(batch.started_at)
        bucket, out = batch.extra["output_dir"]
        view["outputInfo"] = {"gcsOutputDirectory": codec.gs_uri(bucket, out)}
        if state in TERMINAL_STATES:
            view["endTime"] = _rfc3339(batch.ended_at(now))
            error = _ENDED_ERRORS.get(state)
            if state == "failed":
                reasons = batch.errors or [{}]
                error = {"code": 3, "message": str(reasons[0].get("message") or error)}
            if error is not None:
                view["error"] = error
        return view

    async def create_job(self, request: Request) -> Response:
        """``POST .../batchPredictionJobs``: read the input from the sandbox's Cloud Storage."""
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return self.error(400, "Invalid JSON payload received.")
        if not isinstance(payload, dict):
            return self.error(400, "Invalid JSON payload received.")
        model = str(payload.get("model") or "")
        if not model.startswith(("publishers/", "projects/", "models/")):
            return self.error(400, f"Invalid model: {model!r}")
        source = (payload.get("inputConfig") or {}).get("gcsSource") or {}
        dest = ((payload.get("outputConfig") or {}).get("gcsDestination") or {}).get(
            "outputUriPrefix"
        )
        uris = source.get("uris") or []
        if not uris or not dest:
            return self.error(
                400, "inputConfig.gcsSource.uris and outputConfig.gcsDestination are required"
            )
        entries: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] | None = None
        for uri in uris:
            try:
                bucket, name = codec.split_gs(str(uri))
            except ValueError as exc:
                return self.error(400, str(exc))
            with self._objects_lock:
                obj = self.objects.get((bucket, name))
            if obj is None:
                errors = [{"message": f"Failed to read {uri}: no such object"}]
                break
            found, problem = codec.input_entries(obj.data)
            entries += found
            if problem is not None:
                # a malformed input fails the job as a whole, after creation, as Vertex does
                errors = [{"message": f"{uri}: {problem}"}]
                break
        if errors is None and not entries:
            errors = [{"message": "the input holds no requests"}]
        out_bucket, out_prefix = codec.split_gs(str(dest))
        model_id = model.rsplit("/", 1)[-1]
        batch = self.new_batch(
            entries,
            lambda entry, b: self._run(entry, b.id, model_id),
            prefix="",
            metadata={"displayName": str(payload.get("displayName") or "")},
            extra={
                "model": model,
                "parent": (request.path_params["project"], request.path_params["location"]),
                "input_config": payload["inputConfig"],
                "output_config": payload["outputConfig"],
                "output_dir": (
                    out_bucket,
                    "/".join(
                        p for p in (out_prefix, f"prediction-model-{secrets.token_hex(6)}") if p
                    ),
                ),
            },
            errors=errors,
        )
        return self.json(self._job(batch))

    async def list_jobs(self, request: Request) -> Response:
        """``GET .../batchPredictionJobs`` (newest first, ``pageSize``, ``pageToken``)."""
        try:
            size = int(request.query_params.get("pageSize", "100") or 100)
        except ValueError:
            return self.error(400, "pageSize must be an integer")
        size = 100 if size <= 0 else min(size, 1000)
        newest = list(reversed(self.engine.list_batches(NAMESPACE)))
        # the token is the id of the last job on the previous page
        page, more = cursor_page(
            newest, [b.id for b in newest], request.query_params.get("pageToken"), size
        )
        body: dict[str, Any] = {"batchPredictionJobs": [self._job(b) for b in page]}
        if more:
            body["nextPageToken"] = page[-1].id
        return self.json(body)

    def routes(self) -> list[BaseRoute]:
        K = RouteKind
        out: list[BaseRoute] = []
        for v in VERSIONS:
            r = functools.partial(self.route, version=v)
            jobs = f"/{v}/projects/{{project}}/locations/{{location}}/batchPredictionJobs"
            one = jobs + "/{batch_id}"
            out += [
                r(jobs, self.create_job, ["POST"], K.CREATE),
                r(jobs, self.list_jobs, ["GET"], K.LIST),
                r(one + ":cancel", self.cancel_batch, ["POST"], K.CANCEL),
                r(one, self.retrieve_batch, ["GET"], K.POLL),
                r(one, self.delete_batch, ["DELETE"], K.DELETE),
            ]
        s = functools.partial(self.route, guarded=False)
        obj = "/storage/v1/b/{bucket}/o/{name:path}"
        out += [
            s("/upload/storage/v1/b/{bucket}/o", self.upload, ["POST"], K.UPLOAD),
            # the session id in the URL is the credential of a resumable upload's chunks
            s("/upload/storage/v1/b/{bucket}/o", self.upload_chunk, ["PUT"], K.UPLOAD),
            s("/download" + obj, self.download, ["GET"], K.DOWNLOAD),
            s("/storage/v1/b/{bucket}/o", self.list_objects, ["GET"], K.LIST),
            s(obj, self.object_metadata, ["GET"], K.POLL),
            s(obj, self.delete_object, ["DELETE"], K.DELETE),
        ]
        return out


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """(metadata, media) of a ``multipart/related`` upload body."""
    marker = "boundary="
    at = content_type.find(marker)
    if at < 0:
        raise ValueError("no boundary")
    boundary = content_type[at + len(marker) :].split(";")[0].strip().strip("'\"").encode()
    parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    if len(parts) < 2:
        raise ValueError("expected a metadata part and a media part")

    def content(part: bytes) -> bytes:
        _, sep, rest = part.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part has no headers")
        return rest[:-2] if rest.endswith(b"\r\n") else rest

    meta = json.loads(content(parts[0]) or b"{}")
    return (meta if isinstance(meta, dict) else {}), content(parts[1])


def routes(engine: SandboxEngine) -> list[BaseRoute]:
    """Starlette routes of the emulated Vertex and Cloud Storage APIs."""
    return VertexSandbox(engine).routes()
