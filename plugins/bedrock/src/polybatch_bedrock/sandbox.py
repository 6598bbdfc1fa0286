"""The sandbox's AWS Bedrock batch inference: the control plane and the S3 subset boto3 uses.

Mounted at ``/bedrock``. The control plane (REST-JSON, the paths of botocore's ``bedrock``
service model): ``POST /model-invocation-job`` (create; ``clientRequestToken`` idempotency: the
same token names the same job), ``GET /model-invocation-job/{id}``, ``GET /model-invocation-jobs``
(``nameContains``, ``statusEquals``, ``sortOrder``, ``maxResults``/``nextToken``),
``POST /model-invocation-job/{id}/stop``; errors carry ``x-amzn-ErrorType``. S3, path-style under
``/bedrock/s3``: PutObject (``aws-chunked`` bodies decoded), GetObject, ListObjectsV2 and
DeleteObject, errors in S3's XML. SigV4 is accepted without checking the signature: the key guard
compares the access key id of the ``Credential=`` field with the engine's key.

A job reads its input objects when it is created and fails validation (``Failed`` with a message,
as Bedrock reports it) when a line is not a ``{"recordId", "modelInput"}`` object, or the job holds
fewer than ``min_records`` or more than ``max_records`` records. ``min_records`` defaults to 1 here
(an account whose minimum quota was lowered), so small demos run; pass ``min_records=100`` for
Bedrock's default. Records whose ``modelInput`` is invalid for the model family get a record-level
``error`` (``errorCode`` 400); ``item_error_rate`` injects ``errorCode`` 500 errors.

When a job ends, its output is written under ``{output prefix}{job id}/``: one ``<input>.out`` per
input file with the records that ran, in a shuffled (deterministic) order, and
``manifest.json.out``. The missing-output fault drops the successful records from it; output
downloads can be truncated. Engine states map to statuses through :func:`codec.reported_status`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox.api import ProviderApi, RouteKind
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine, SandboxFile
from polybatch.sandbox.faults import BATCH_EXPIRE, BATCH_MISSING_OUTPUT
from polybatch_anthropic.sandbox import AnthropicSandbox

from . import codec

NAMESPACE = "bedrock"
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: S3's PutObject limit
MAX_OBJECT_BYTES = 5 * 1024**3
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    409: "ConflictException",
    429: "ThrottlingException",
}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode_aws_chunked(data: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (``hex-size[;ext]\\r\\n data \\r\\n ... 0\\r\\n``
    then trailers), as botocore sends streaming uploads with a trailing checksum."""
    out = bytearray()
    pos = 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def _etag(f: SandboxFile) -> str:
    return '"' + hashlib.md5(f.data, usedforsecurity=False).hexdigest() + '"'


class BedrockSandbox(ProviderApi):
    """The route handlers, bound to one engine."""

    namespace = NAMESPACE
    request_id_header = "x-amzn-RequestId"
    batch_param = "job_id"
    batch_noun = "model invocation job"

    def __init__(
        self, engine: SandboxEngine, *, min_records: int = 1, max_records: int = 50_000
    ) -> None:
        super().__init__(engine)
        self.min_records = min_records
        self.max_records = max_records
        #: job id -> engine batch, and clientRequestToken -> job id
        self.jobs: dict[str, SandboxBatch] = {}
        self.tokens: dict[str, str] = {}
        # Claude replies are the Anthropic sandbox's (the same Messages body): reused, not copied
        self._claude = AnthropicSandbox(engine, namespace=NAMESPACE)

    # -- plumbing ---------------------------------------------------------------------------
    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return {"message": message}

    def error(self, status: int, message: str, **detail: Any) -> Response:
        kind = detail.get("type") or _ERROR_TYPES.get(status, "InternalServerException")
        return self.json(self.error_body(status, message), status, {"x-amzn-ErrorType": kind})

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"The specified {what} {ident} could not be found.")

    def presented_key(self, request: Request) -> str | None:
        m = _CREDENTIAL.search(request.headers.get("authorization", ""))
        return m.group(1) if m else None

    def denied(self, request: Request, presented: str | None) -> Response:
        if "bucket" in request.path_params:
            return self.s3_error(
                403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist."
            )
        return self.error(
            403,
            "The security token included in the request is invalid.",
            type="UnrecognizedClientException",
        )

    def s3_error(self, status: int, code: str, message: str) -> Response:
        rid = self.request_id()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{rid}</RequestId></Error>"
        )
        return Response(
            body, status, media_type="application/xml", headers={"x-amz-request-id": rid}
        )

    # -- S3 objects: the engine's files, each named by its s3:// URI ---------------------------
    def put(
        self, bucket: str, key: str, data: bytes, fault_key: tuple[Any, ...] | None = None
    ) -> SandboxFile:
        uri = f"s3://{bucket}/{key}"
        f = SandboxFile(uri, NAMESPACE, data, key, bucket, int(self.now()), fault_key=fault_key)
        with self.engine.lock:
            self.engine.files[uri] = f
        return f

    def get(self, bucket: str, key: str) -> SandboxFile | None:
        return self.engine.get_file(NAMESPACE, f"s3://{bucket}/{key}")

    def listing(self, bucket: str, prefix: str) -> list[SandboxFile]:
        """The bucket's objects under ``prefix``, by key."""
        with self.engine.lock:
            found = [
                f
                for f in self.engine.files.values()
                if f.namespace == NAMESPACE
                and f.purpose == bucket
                and f.filename.startswith(prefix)
            ]
        return sorted(found, key=lambda f: f.filename)

    def find_batch(self, batch_id: str) -> SandboxBatch | None:
        return self.jobs.get(codec.job_id(batch_id))

    # -- jobs -------------------------------------------------------------------------------
    def _run(self, entry: dict[str, Any], batch: SandboxBatch) -> dict[str, Any]:
        """One record's output line (``modelOutput`` or ``error``)."""
        rid, body = entry["recordId"], entry["modelInput"]
        fam, model = batch.extra["family"], batch.extra["modelId"]
        line: dict[str, Any] = {"recordId": rid, "modelInput": body}
        problem = codec.check_model_input(fam, body, model)
        if problem is not None:
            return {**line, "error": {"errorCode": 400, "errorMessage": problem}}
        if self.item_fails(rid, entry["attempt"]):
            error = {"errorCode": 500, "errorMessage": "Internal server error (injected fault)"}
            return {**line, "error": error}
        return {**line, "modelOutput": self._reply(fam, body, model, batch.id, entry)}

    def _reply(
        self,
        fam: codec.Family,
        body: dict[str, Any],
        model: str,
        batch_id: str,
        entry: dict[str, Any],
    ) -> dict[str, Any]:
        rid, attempt = entry["recordId"], entry["attempt"]
        if fam == "anthropic":
            params = {k: v for k, v in body.items() if k != "anthropic_version"}
            fmt = (params.get("output_config") or {}).get("format")
            broken = fmt is not None and self.breaks_json(rid, attempt)
            return self._claude._message(
                {**params, "model": model}, batch_id, rid, invalid_json=broken
            )
        if fam == "llama":
            reply = self.engine.model.chat(
                model=model,
                messages=codec.llama_turns(body["prompt"]),
                max_tokens=body.get("max_gen_len"),
            )
            return {
                "generation": reply.text,
                "prompt_token_count": reply.prompt_tokens,
                "generation_token_count": reply.completion_tokens,
                "stop_reason": reply.finish_reason,
            }
        config = wire.as_mapping(body.get("inferenceConfig"))
        reply = self.engine.model.chat(
            model=model,
            messages=codec.converse_turns(body),
            max_tokens=config.get("maxTokens"),
            stop=config.get("stopSequences"),
        )
        out: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
            "stopReason": "max_tokens" if reply.finish_reason == "length" else "end_turn",
            "usage": {
                "inputTokens": reply.prompt_tokens,
                "outputTokens": reply.completion_tokens,
                "totalTokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }
        if fam == "converse":
            out["metrics"] = {"latencyMs": 0}
        return out

    def _records(self, uri: str) -> tuple[list[dict[str, Any]], str | None]:
        """The records of the input object(s) at ``uri`` (a file or a folder), or why not."""
        bucket, key = codec.split_s3_uri(uri)
        found = [
            f
            for f in self.listing(bucket, key)
            if (f.filename == key or f.filename.startswith(codec.folder(key)))
            and f.filename.endswith(".jsonl")
        ]
        if not found:
            return [], f"No input JSONL file was found at {uri}."
        records: list[dict[str, Any]] = []
        for obj in found:
            k = obj.filename
            for n, raw in enumerate(wire.iter_jsonl([obj.data]), 1):
                try:
                    line = wire.load_object(raw)
                except wire.WireError as exc:
                    return [], f"{k} line {n}: {exc.message}"
                if not isinstance(line.get("modelInput"), dict):
                    return [], f"{k} line {n}: a record needs a modelInput object"
                rid = line.get("recordId") or f"{secrets.token_hex(5).upper()}X"
                records.append({"recordId": str(rid), "modelInput": line["modelInput"], "file": k})
        return records, None

    async def create(self, request: Request) -> Response:
        """``CreateModelInvocationJob``: idempotent on ``clientRequestToken``."""
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error(400, "the request body is not JSON", type="SerializationException")
        for field in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if not body.get(field):
                return self.error(400, f"1 validation error detected: {field} must not be null")
        if not codec.JOB_NAME_RE.match(str(body["jobName"])) or len(body["jobName"]) > 63:
            return self.error(400, "jobName does not satisfy the constraint pattern")
        token = body.get("clientRequestToken")
        with self.engine.lock:
            known = self.tokens.get(token) if token else None
            if known is not None:
                return self.json({"jobArn": self._arn(known)})
        hours = body.get("timeoutDurationInHours")
        if hours is not None and not (isinstance(hours, int) and 24 <= hours <= 168):
            return self.error(400, "timeoutDurationInHours must be between 24 and 168")
        try:
            in_uri = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
            out_uri = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
            codec.split_s3_uri(out_uri)
            fam = codec.family(
                body["modelId"], invocation_type=body.get("modelInvocationType", "InvokeModel")
            )
        except (KeyError, TypeError, ValueError) as exc:
            return self.error(400, f"invalid job configuration: {exc}")
        records, problem = self._records(in_uri)
        if problem is None and not self.min_records <= len(records) <= self.max_records:
            problem = (
                f"The job has {len(records)} records; a batch inference job needs "
                f"{self.min_records} to {self.max_records} records."
            )
        attempts = self.next_attempts(r["recordId"] for r in records)
        entries = [{**r, "attempt": a} for r, a in zip(records, attempts, strict=True)]
        with self.engine.lock:
            job_id = f"{len(self.jobs) + 1:06d}{secrets.token_hex(3)}"
            batch = self.new_batch(
                entries,
                self._run,
                prefix="bedrock_",
                metadata={"jobName": str(body["jobName"])},
                extra={**body, "family": fam, "job_id": job_id},
                errors=[{"message": problem}] if problem else None,
            )
            if hours and BATCH_EXPIRE not in batch.faults:
                batch.expires_at = batch.created_at + hours * 3600
            self.jobs[job_id] = batch
            if token:
                self.tokens[token] = job_id
        return self.json({"jobArn": self._arn(job_id)})

    def _arn(self, job_id: str) -> str:
        return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{job_id}"

    def _counts(self, batch: SandboxBatch, now: float) -> tuple[int, int, int]:
        """(processed, successes, errors) so far."""
        done = batch.processed(now)
        errors = sum("error" in batch.outcome(i) for i in range(done))
        return done, done - errors, errors

    def batch_view(self, batch: SandboxBatch, request: Request | None = None) -> dict[str, Any]:
        now = self.now()
        state = batch.state(now)
        if state in TERMINAL_STATES:
            self._output(batch)
        done, ok, failed = self._counts(batch, now)
        span = batch.started_at - batch.created_at
        phase = (now - batch.created_at) / span if span > 0 else 1.0
        x = batch.extra
        view: dict[str, Any] = {
            "jobArn": self._arn(x["job_id"]),
            "jobName": x["jobName"],
            "modelId": x["modelId"],
            "roleArn": x["roleArn"],
            "status": codec.reported_status(state, processed=done, phase=phase),
            "submitTime": _iso(batch.created_at),
            "lastModifiedTime": _iso(batch.ended_at(now) or now),
            "inputDataConfig": x["inputDataConfig"],
            "outputDataConfig": x["outputDataConfig"],
            "timeoutDurationInHours": x.get("timeoutDurationInHours", 24),
            "jobExpirationTime": _iso(batch.expires_at),
            "totalRecordCount": len(batch.requests),
            "processedRecordCount": done,
            "successRecordCount": ok,
            "errorRecordCount": failed,
        }
        for key in ("clientRequestToken", "vpcConfig", "modelInvocationType"):
            if key in x:
                view[key] = x[key]
        if state in TERMINAL_STATES:
            view["endTime"] = _iso(batch.ended_at(now))
        if state == "failed" and batch.errors:
            view["message"] = str(batch.errors[0].get("message"))
        return view

    def _output(self, batch: SandboxBatch) -> dict[str, Any]:
        """The output objects of an ended job, written once."""
        return self.output_once(batch, lambda: self._write_output(batch), none_if_failed=True)

    def _write_output(self, batch: SandboxBatch) -> dict[str, Any]:
        now = self.now()
        done = batch.processed(now)
        bucket, prefix = codec.split_s3_uri(
            batch.extra["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        )
        where = f"{codec.folder(prefix)}{batch.extra['job_id']}/"
        lines: dict[str, list[bytes]] = {}
        tokens = [0, 0]
        ok = 0
        # output order is not guaranteed: a deterministic shuffle makes clients join on recordId
        ran = sorted(range(done), key=lambda i: wire.short_hash(batch.id, i))
        for i in ran:
            line = batch.outcome(i)
            entry = batch.requests[i]
            if "modelOutput" in line:
                ok += 1
                usage = codec.decode_record(line, batch_id=None, model=None).usage
                tokens[0] += usage.total_input_tokens
                tokens[1] += usage.output_tokens
                if BATCH_MISSING_OUTPUT in batch.faults:
                    continue
            name = entry["file"].rsplit("/", 1)[-1] + ".out"
            lines.setdefault(name, []).append(wire.dumps(line))
        manifest = {
            "totalRecordCount": len(batch.requests),
            "processedRecordCount": done,
            "successRecordCount": ok,
            "errorRecordCount": done - ok,
            "inputTokenCount": tokens[0],
            "outputTokenCount": tokens[1],
        }
        for name, out in lines.items():
            self.put(bucket, where + name, b"\n".join(out) + b"\n", (NAMESPACE, batch.serial, name))
        self.put(bucket, where + "manifest.json.out", json.dumps(manifest).encode())
        return {"files": sorted(lines)}

    async def list_jobs(self, request: Request) -> Response:
        """``ListModelInvocationJobs`` (filters, sort order, pages of ``maxResults``)."""
        q = request.query_params
        contains, status = q.get("nameContains"), q.get("statusEquals")
        views = [self.batch_view(b) for b in list(self.jobs.values()) if not b.deleted]
        views = [
            v
            for v in views
            if (not contains or contains in v["jobName"]) and (not status or v["status"] == status)
        ]
        if q.get("sortOrder") == "Descending":
            views.reverse()
        try:
            size = int(q.get("maxResults", "1000"))
            start = int(q.get("nextToken", "0"))
        except ValueError:
            return self.error(400, "maxResults and nextToken must be integers")
        page: dict[str, Any] = {"invocationJobSummaries": views[start : start + size]}
        if start + size < len(views):
            page["nextToken"] = str(start + size)
        return self.json(page)

    async def stop(self, request: Request) -> Response:
        """``StopModelInvocationJob``: only a job that has not ended can be stopped."""
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if found.state(self.now()) in TERMINAL_STATES:
            return self.error(400, "The job cannot be stopped: it has already ended.")
        self.engine.cancel(found)
        return self.json({})

    # -- S3 ---------------------------------------------------------------------------------
    def _materialize(self) -> None:
        """Write the output of every job that has ended (S3 readers see it at once)."""
        now = self.now()
        for batch in list(self.jobs.values()):
            if batch.output is None and batch.state(now) in TERMINAL_STATES:
                self._output(batch)

    async def put_object(self, request: Request) -> Response:
        data = await request.body()
        if "aws-chunked" in request.headers.get("content-encoding", "") or request.headers.get(
            "x-amz-content-sha256", ""
        ).startswith("STREAMING-"):
            data = decode_aws_chunked(data)
        if len(data) > MAX_OBJECT_BYTES:
            return self.s3_error(
                400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
            )
        obj = self.put(request.path_params["bucket"], request.path_params["key"], data)
        return Response(b"", headers={"ETag": _etag(obj), "x-amz-request-id": self.request_id()})

    async def get_object(self, request: Request) -> Response:
        self._materialize()
        bucket, key = request.path_params["bucket"], request.path_params["key"]
        obj = self.get(bucket, key)
        if obj is None:
            return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return Response(
            self.deliver(obj.data, obj.fault_key),
            media_type="application/octet-stream",
            headers={"ETag": _etag(obj), "Last-Modified": _http_date(obj.created_at)},
        )

    async def delete_object(self, request: Request) -> Response:
        uri = f"s3://{request.path_params['bucket']}/{request.path_params['key']}"
        with self.engine.lock:
            self.engine.files.pop(uri, None)
        return Response(b"", 204)

    async def list_objects(self, request: Request) -> Response:
        """``ListObjectsV2`` (``prefix``, ``max-keys``, ``continuation-token``, url encoding)."""
        self._materialize()
        q = request.query_params
        bucket, prefix = request.path_params["bucket"], q.get("prefix", "")
        keys = self.listing(bucket, prefix)
        size = int(q.get("max-keys", "1000"))
        start = int(q.get("continuation-token", "0") or 0)
        page = keys[start : start + size]
        url = q.get("encoding-type") == "url"

        def enc(text: str) -> str:
            return escape(quote(text, safe="/") if url else text)

        contents = "".join(
            f"<Contents><Key>{enc(o.filename)}</Key><LastModified>{_iso(o.created_at)}"
            f"</LastModified><ETag>{escape(_etag(o))}</ETag><Size>{len(o.data)}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for o in page
        )
        more = start + size < len(keys)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix>"
            f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{size}</MaxKeys>"
            f"{'<EncodingType>url</EncodingType>' if url else ''}"
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{contents}"
            f"{f'<NextContinuationToken>{start + size}</NextContinuationToken>' if more else ''}"
            "</ListBucketResult>"
        )
        return Response(body, media_type="application/xml")

    def routes(self) -> list[BaseRoute]:
        K = RouteKind
        job = "/model-invocation-job/{job_id:path}"
        obj = "/s3/{bucket}/{key:path}"
        return [
            self.route("/model-invocation-job", self.create, ["POST"], K.CREATE),
            self.route(job + "/stop", self.stop, ["POST"], K.CANCEL),
            self.route(job, self.retrieve_batch, ["GET"], K.POLL),
            self.route("/model-invocation-jobs", self.list_jobs, ["GET"], K.LIST),
            self.route(obj, self.put_object, ["PUT"], K.UPLOAD),
            self.route(obj, self.get_object, ["GET"], K.DOWNLOAD),
            self.route(obj, self.delete_object, ["DELETE"], K.DELETE),
            self.route("/s3/{bucket}", self.list_objects, ["GET"], K.LIST),
        ]


def _http_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def routes(engine: SandboxEngine, **options: Any) -> list[BaseRoute]:
    """Starlette routes of the emulated Bedrock control plane and S3 subset (``options``:
    ``min_records``, ``max_records``)."""
    return BedrockSandbox(engine, **options).routes()
