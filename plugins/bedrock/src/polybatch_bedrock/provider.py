"""The AWS Bedrock batch inference adapter, through the official ``boto3`` SDK.

Blocking-first: boto3 has no async client, so this adapter writes the blocking side of each
lifecycle pair (``submit``, ``poll``, ``results``, ``cancel``, ``find_batch``) and the base class
derives the async side by running them in a worker thread (``asyncio.to_thread``; results stream
through :func:`polybatch.portal.iterate_in_thread`). That is the same worker thread an explicit
``to_thread`` around each boto3 call would use, written once by the base instead of per call.
boto3 clients are thread-safe, so one pair (``bedrock`` + ``s3``) serves every loop and thread
(no client per loop).

One provider batch is one Bedrock model invocation job:

1. the chunk's lines go to ``{s3_input_uri}{job name}.jsonl`` (PutObject; a job smaller than the
   minimum is refused before this, see :data:`DEFAULT_MIN_RECORDS`);
2. ``CreateModelInvocationJob`` with ``clientRequestToken`` derived from the job, chunk, model and
   input (:func:`codec.request_token`): a create sent again after its answer was lost (by the SDK's
   retry or the runner's) names the same job, never a second billed one. The job name carries the
   polybatch job and chunk (:func:`codec.job_name`), which :meth:`find_batch` searches with
   ``ListModelInvocationJobs(nameContains=...)``;
3. ``GetModelInvocationJob`` to poll (every status mapped: :data:`codec.STATUS`);
4. results: every ``*.jsonl.out`` under ``{s3_output_uri}{job id}/``, joined on ``recordId``
   (order not guaranteed), usage per record from ``modelOutput``; records a stopped or timed-out
   job never processed come back as ``canceled`` / ``expired`` (read from the input file);
   ``manifest.json.out``'s record and token counts are checked against what the files held (a
   warning when Bedrock counted more);
5. ``StopModelInvocationJob`` to cancel; clean-up deletes the input object polybatch wrote (not
   Bedrock's output, which is the job's record) unless ``--keep-files``.

Batch ids are job ids (the ARN's last segment), which every job operation accepts.

Credentials come from boto3's own chain (environment, ``aws_profile``/``AWS_PROFILE``, SSO,
instance roles) and never enter the ledger. ``api_key`` (what the sandbox passes) is used as an
access key id, with the secret from ``AWS_SECRET_ACCESS_KEY`` or a placeholder the sandbox ignores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import boto3
import botocore.config
import botocore.exceptions as boto_errors

from polybatch import wire
from polybatch.errors import (
    ConfigError,
    CredentialsError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
)
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import (
    META_CHUNK,
    META_JOB,
    BatchProvider,
    BatchStatus,
    Limits,
    SubmittedBatch,
)
from polybatch.sdk import SDKProvider, connection, failure, http

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

log = logging.getLogger("polybatch")

#: "Minimum number of records per batch inference job" (a per-model quota; default 100)
DEFAULT_MIN_RECORDS = 100
#: "Records per batch inference job" (default 50,000; per model, adjustable)
DEFAULT_MAX_RECORDS = 50_000
#: "Batch inference input file size" (1 GB, not adjustable); one file per job, so also the job size
#: (the 5 GB "job size" quota, 100 GB for Nova, never binds a one-file job)
MAX_FILE_BYTES = 1_000_000_000
#: ``timeoutDurationInHours``: 24 to 168 (botocore's shape), Bedrock's default 24
TIMEOUT_HOURS = range(24, 169)
#: read this much of a results object at a time
READ_CHUNK = 1024 * 1024
#: the secret paired with ``api_key`` when none is set (the sandbox does not check signatures)
PLACEHOLDER_SECRET = "polybatch-sandbox-secret"
SANDBOX_REGION = "us-east-1"
SANDBOX_ROLE = "arn:aws:iam::123456789012:role/polybatch-sandbox"
SANDBOX_BUCKET = "polybatch-sandbox"
NO_CREDENTIALS = (
    "bedrock: no AWS credentials found by boto3: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or the aws_profile setting) for a profile or SSO, "
    "or run with an instance role"
)
#: settings a profile must give (preflight names the missing ones)
REQUIRED_SETTINGS = ("role_arn", "s3_input_uri", "s3_output_uri")


@dataclass(frozen=True)
class Clients:
    """The two boto3 clients one provider uses (thread-safe: shared by every loop)."""

    bedrock: Any
    s3: Any


def _client_error_status(exc: Any) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status else None


def _client_error_detail(exc: Any) -> str:
    err = exc.response.get("Error", {})
    code, message = err.get("Code") or "", err.get("Message") or ""
    return f"{code}: {message}" if code and message else code or message or str(exc)


class BedrockProvider(SDKProvider[Clients]):
    """Provider ``bedrock``: AWS Bedrock batch inference (model invocation jobs on S3).

    Settings (a profile's ``[profiles.X.provider_settings]``): ``role_arn`` (the service role
    Bedrock assumes), ``s3_input_uri`` / ``s3_output_uri`` (``s3://bucket/prefix/``), ``region``
    (else boto3's), ``aws_profile``, ``output_kms_id`` (output encryption), ``vpc_subnet_ids`` +
    ``vpc_security_group_ids``, ``s3_bucket_owner`` (account id), ``timeout_hours`` (24-168),
    ``model_invocation_type`` (``InvokeModel`` or ``Converse``), ``model_family`` (for ARNs that
    do not name one), ``min_records`` / ``max_records`` / ``max_bytes`` (your account's quotas),
    ``default_max_tokens``, ``max_retries`` (boto3's, default 2), ``timeout`` (seconds, boto3's
    connect and read timeouts), ``s3_endpoint_url``.
    """

    name: ClassVar[str] = "bedrock"
    credential_env: ClassVar[tuple[str, ...]] = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")
    #: the defaults; an instance's limits follow its settings (see :meth:`__init__`)
    limits: ClassVar[Limits] = Limits(
        max_requests=DEFAULT_MAX_RECORDS,
        max_bytes=MAX_FILE_BYTES,
        min_requests=DEFAULT_MIN_RECORDS,
        completion_windows=tuple(f"{h}h" for h in (24, 48, 72, 96, 120, 144, 168)),
        custom_id_pattern=codec.RECORD_ID_RE.pattern,
    )
    sandbox_prefix: ClassVar[str] = "/bedrock"

    #: botocore's own per-service endpoint variables (configprovider: AWS_ENDPOINT_URL_<SERVICE>)
    base_url_env: ClassVar[str | None] = "AWS_ENDPOINT_URL_BEDROCK"
    s3_endpoint_env: ClassVar[str] = "AWS_ENDPOINT_URL_S3"
    #: access key ids (AKIA... long-term, ASIA... temporary)
    key_patterns = (re.compile(r"\b((?:AKIA|ASIA))[A-Z0-9]{12,}"),)
    errors = {
        boto_errors.ClientError: http(_client_error_status, _client_error_detail),
        boto_errors.ConnectionError: connection(),  # endpoint, connect timeout, proxy, TLS
        boto_errors.HTTPClientError: connection(),  # closed, read timeout, cut stream
        boto_errors.IncompleteReadError: connection(),
        boto_errors.BotoCoreError: failure(),  # parameter validation, credentials, region
        # an output line that does not parse: a download cut short, fetched again
        wire.WireError: connection(),
    }

    def __init__(self, **kwargs: Any) -> None:
        """The base's arguments (``api_key``, ``base_url``, ``settings``)."""
        super().__init__(**kwargs)
        s = self.settings
        # per-account quotas: the instance's Limits shadow the class defaults (the planner reads
        # ``provider.limits``); the class attribute stays the documented default
        vars(self)["limits"] = self.limits.model_copy(
            update={
                "min_requests": int(s.get("min_records", DEFAULT_MIN_RECORDS)),
                "max_requests": int(s.get("max_records", DEFAULT_MAX_RECORDS)),
                "max_bytes": int(s.get("max_bytes", MAX_FILE_BYTES)),
            }
        )
        self._shared: Clients | None = None
        self._lock = threading.Lock()

    # -- settings ---------------------------------------------------------------------------
    @property
    def key_env(self) -> str | None:
        """What a 401/403 message tells the user to check."""
        return "the AWS credentials and the IAM permissions"

    @property
    def invocation_type(self) -> str:
        return str(self.settings.get("model_invocation_type", "InvokeModel"))

    @property
    def default_max_tokens(self) -> int:
        """max_tokens sent for items without one (Claude requires it)."""
        return int(self.settings.get("default_max_tokens", codec.DEFAULT_MAX_TOKENS))

    def family(self, model: str) -> codec.Family:
        """The body shape for ``model`` under this provider's settings (ConfigError if none)."""
        try:
            return codec.family(
                model,
                invocation_type=self.invocation_type,
                override=self.settings.get("model_family"),
            )
        except ValueError as exc:
            raise ConfigError(f"bedrock: {exc}") from None

    def preflight(self) -> None:
        """Settings complete and credentials found, before anything is planned."""
        missing = [k for k in REQUIRED_SETTINGS if not self.settings.get(k)]
        if missing:
            raise ConfigError(
                f"bedrock: set {', '.join(missing)} in the profile's provider settings "
                "(see docs/providers/bedrock.md)"
            )
        for key in ("s3_input_uri", "s3_output_uri"):
            try:
                codec.split_s3_uri(str(self.settings[key]))
            except ValueError as exc:
                raise ConfigError(f"bedrock: {key}: {exc}") from None
        if self.invocation_type not in codec.INVOCATION_TYPES:
            raise ConfigError(
                f"bedrock: model_invocation_type must be one of {', '.join(codec.INVOCATION_TYPES)}"
            )
        hours = self.settings.get("timeout_hours")
        if hours is not None and int(hours) not in TIMEOUT_HOURS:
            raise ConfigError("bedrock: timeout_hours must be 24 to 168")
        if self.limits.min_requests > self.limits.max_requests:
            raise ConfigError("bedrock: min_records is above max_records")
        try:
            session = self._session()
            found = self.api_key or session.get_credentials() is not None
        except boto_errors.BotoCoreError as exc:  # an unknown profile, a broken config file
            raise ConfigError(f"bedrock: {self.scrub(str(exc))}") from None
        if not found:
            raise CredentialsError(NO_CREDENTIALS)
        if not (self.settings.get("region") or session.region_name):
            raise ConfigError("bedrock: set region in the provider settings (or AWS_REGION)")

    # -- the clients ------------------------------------------------------------------------
    def _session(self) -> Any:
        profile = self.settings.get("aws_profile")
        region = self.settings.get("region")
        if self.api_key:
            secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or PLACEHOLDER_SECRET
            return boto3.Session(
                aws_access_key_id=self.remember_secret(self.api_key),
                aws_secret_access_key=self.remember_secret(secret),
                region_name=region,
            )
        return boto3.Session(profile_name=profile, region_name=region)

    @property
    def clients(self) -> Clients:
        """The boto3 clients, built on first use (no credentials are needed before)."""
        with self._lock:
            if self._shared is None:
                with self.sdk_errors("setting up the boto3 clients"):
                    self._shared = self._build()
            return self._shared

    def _build(self) -> Clients:
        session = self._session()
        if not self.api_key and session.get_credentials() is None:
            raise CredentialsError(NO_CREDENTIALS)
        retries = int(self.settings.get("max_retries", 2))
        timeout = self.settings.get("timeout")
        config = botocore.config.Config(
            retries={"max_attempts": retries + 1, "mode": "standard"},
            user_agent_extra="polybatch",
            **(
                {"connect_timeout": float(timeout), "read_timeout": float(timeout)}
                if timeout
                else {}
            ),
        )
        s3_url = self.settings.get("s3_endpoint_url")
        s3_config = config
        if s3_url or os.environ.get(self.s3_endpoint_env):
            # an emulator (or a private endpoint) is addressed by path, not by bucket host name
            s3_config = config.merge(botocore.config.Config(s3={"addressing_style": "path"}))
        region = self.settings.get("region") or session.region_name or SANDBOX_REGION
        bedrock = session.client(
            "bedrock", region_name=region, endpoint_url=self.resolved_base_url(), config=config
        )
        s3 = session.client("s3", region_name=region, endpoint_url=s3_url or None, config=s3_config)
        if s3_config is not config:
            # emulators (the sandbox's uvicorn among them) handle "Expect: 100-continue" poorly
            # when they answer before reading the body; real S3 keeps botocore's default
            s3.meta.events.register("before-sign.s3.PutObject", _no_expect_header)
        return Clients(bedrock=bedrock, s3=s3)

    def make_client(self) -> Clients:
        """The shared clients (the kit's per-loop slot holds the same pair on every loop)."""
        return self.clients

    # -- items ------------------------------------------------------------------------------
    def wire_custom_id(self, custom_id: str) -> str:
        """See :func:`codec.wire_custom_id` (alphanumeric record ids)."""
        return codec.wire_custom_id(custom_id)

    def validate_item(self, item: BatchItem, model: str) -> None:
        """Raise ItemValidationError if the item cannot be expressed for the model's family."""
        self.encode(item, model)

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One ``{"recordId", "modelInput"}`` line as compact JSON."""
        fam = self.family(item.model or model)
        return wire.dumps(
            codec.encode_record(item, model, fam, default_max_tokens=self.default_max_tokens)
        )

    # -- the batch lifecycle (blocking: the base derives the async side) --------------------
    def _uri(self, key: str) -> tuple[str, str]:
        bucket, prefix = codec.split_s3_uri(str(self.settings[key]))
        return bucket, codec.folder(prefix)

    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload the lines, then create the job (idempotently: see the module docstring)."""
        path = Path(lines_path)
        n = _count_lines(path)
        minimum, maximum = self.limits.min_requests, self.limits.max_requests
        if not minimum <= n <= maximum:
            # a retry round can be smaller than the minimum: refused before anything is uploaded
            raise ProviderError(
                f"a Bedrock batch job holds {minimum} to {maximum} records; this one has {n} "
                "(polybatch never pads a job with billed filler requests: send these requests "
                "through another provider)",
                provider=self.name,
                retryable=False,
            )
        clients = self.clients
        name = codec.job_name(metadata) if metadata else "pb-" + uuid.uuid4().hex[:24]
        bucket, prefix = self._uri("s3_input_uri")
        key = f"{prefix}{name}.jsonl"
        input_uri = f"s3://{bucket}/{key}"
        with self.sdk_errors(f"upload {input_uri}"), path.open("rb") as body:
            clients.s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/jsonl"
            )
        token = (
            codec.request_token(metadata, model, input_uri)
            if metadata
            else "pb-" + uuid.uuid4().hex
        )
        try:
            with self.sdk_errors("create model invocation job"):
                job = clients.bedrock.create_model_invocation_job(
                    **self._create_params(name, token, model, input_uri)
                )
        except ProviderHTTPError as exc:
            if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 429:
                # refused for good: no job will read the input (a lost answer keeps it)
                with contextlib.suppress(ProviderError):
                    self.cleanup(SubmittedBatch(batch_id="", input_file_id=input_uri))
            raise
        arn = _required(job, "jobArn", "create model invocation job")
        return SubmittedBatch(batch_id=codec.job_id(arn), input_file_id=input_uri)

    def _create_params(self, name: str, token: str, model: str, input_uri: str) -> dict[str, Any]:
        s = self.settings
        out_bucket, out_prefix = self._uri("s3_output_uri")
        owner = {"s3BucketOwner": str(s["s3_bucket_owner"])} if s.get("s3_bucket_owner") else {}
        output: dict[str, Any] = {"s3Uri": f"s3://{out_bucket}/{out_prefix}", **owner}
        if s.get("output_kms_id"):
            output["s3EncryptionKeyId"] = str(s["output_kms_id"])
        params: dict[str, Any] = {
            "jobName": name,
            "roleArn": str(s["role_arn"]),
            "clientRequestToken": token,
            "modelId": model,
            "inputDataConfig": {
                "s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL", **owner}
            },
            "outputDataConfig": {"s3OutputDataConfig": output},
        }
        if s.get("vpc_subnet_ids") or s.get("vpc_security_group_ids"):
            params["vpcConfig"] = {
                "subnetIds": list(s.get("vpc_subnet_ids") or []),
                "securityGroupIds": list(s.get("vpc_security_group_ids") or []),
            }
        if s.get("timeout_hours") is not None:
            params["timeoutDurationInHours"] = int(s["timeout_hours"])
        if "model_invocation_type" in s:
            params["modelInvocationType"] = self.invocation_type
        return params

    def cleanup(self, submitted: SubmittedBatch) -> None:
        """Delete the input object polybatch wrote (Bedrock's output stays: it is the job's
        record). S3 answers a delete of a missing key with success: already gone is fine."""
        if submitted.input_file_id:
            bucket, key = codec.split_s3_uri(submitted.input_file_id)
            with self.sdk_errors(f"delete {submitted.input_file_id}"):
                self.clients.s3.delete_object(Bucket=bucket, Key=key)

    #: blocking throughout: the base derives ``acleanup`` from :meth:`cleanup` (the kit's async
    #: default deletes through a per-loop client this adapter does not need)
    acleanup = BatchProvider.acleanup

    def _job(self, batch_id: str) -> dict[str, Any]:
        with self.sdk_errors(f"get model invocation job {batch_id}"):
            job: dict[str, Any] = self.clients.bedrock.get_model_invocation_job(
                jobIdentifier=batch_id
            )
        _required(job, "status", f"get model invocation job {batch_id}")
        return job

    def poll(self, batch_id: str) -> BatchStatus:
        """The job's status and record counts."""
        job = self._job(batch_id)
        state = codec.batch_state(job.get("status"))
        message = job.get("message") if state in ("failed", "expired") else None
        return BatchStatus(
            batch_id=batch_id,
            state=state,
            total=int(job.get("totalRecordCount") or 0),
            completed=int(job.get("successRecordCount") or 0),
            failed=int(job.get("errorRecordCount") or 0),
            message=str(message or f"the job ended {job.get('status')}")
            if state in ("failed", "expired")
            else None,
        )

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Every record's result: the output files' lines, then the unprocessed records of a
        stopped or timed-out job as ``canceled`` / ``expired``."""
        job = self._job(batch_id)
        model = str(job.get("modelId") or "") or None
        out_uri = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        bucket, prefix = codec.split_s3_uri(out_uri)
        seen: set[str] = set()
        where = f"{codec.folder(prefix)}{batch_id}/"
        tokens = [0, 0]
        for key in self._keys(bucket, where, ".jsonl.out"):
            for raw in self._lines(bucket, key):
                with self.sdk_errors(f"results of {batch_id}: s3://{bucket}/{key}"):
                    result = codec.decode_record(raw, batch_id=batch_id, model=model)
                if result.custom_id not in seen:
                    seen.add(result.custom_id)
                    tokens[0] += result.usage.total_input_tokens
                    tokens[1] += result.usage.output_tokens
                    yield result
        self._check_manifest(batch_id, bucket, where, len(seen), tokens)
        kind = codec.LEFTOVER_STATUS.get(str(job.get("status")))
        if kind is None:
            return
        in_bucket, in_key = codec.split_s3_uri(job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"])
        for key in self._keys(in_bucket, in_key, ".jsonl"):
            data = b"".join(self._lines(in_bucket, key, raw=True))
            for rid in codec.input_record_ids(data):
                if rid not in seen:
                    seen.add(rid)
                    yield codec.leftover(rid, kind, batch_id=batch_id)

    def _check_manifest(
        self, batch_id: str, bucket: str, where: str, records: int, tokens: list[int]
    ) -> None:
        """Warn when ``manifest.json.out`` counts more processed records or tokens than the
        output files held (records lost on Bedrock's side become missing results)."""
        if not any(k.endswith("manifest.json.out") for k in self._keys(bucket, where, ".out")):
            return
        data = b"".join(self._lines(bucket, where + "manifest.json.out", raw=True))
        try:
            manifest = wire.as_mapping(json.loads(data))
        except ValueError:  # a check only: the results are already complete
            log.warning("bedrock job %s: manifest.json.out is not JSON", batch_id)
            return
        counted = (
            int(manifest.get("processedRecordCount") or 0),
            int(manifest.get("inputTokenCount") or 0),
            int(manifest.get("outputTokenCount") or 0),
        )
        if counted != (records, *tokens):
            log.warning(
                "bedrock job %s: manifest.json.out counts %d records, %d input and %d output "
                "tokens; the output files held %d, %d and %d",
                batch_id,
                *counted,
                records,
                *tokens,
            )

    def _keys(self, bucket: str, prefix: str, suffix: str) -> Iterator[str]:
        """Keys under ``prefix`` ending in ``suffix`` (ListObjectsV2, every page)."""
        token: str | None = None
        while True:
            with self.sdk_errors(f"list s3://{bucket}/{prefix}"):
                page = self.clients.s3.list_objects_v2(
                    Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
                )
            _required(page, "IsTruncated", f"list s3://{bucket}/{prefix}")
            for obj in page.get("Contents") or []:
                if str(obj["Key"]).endswith(suffix):
                    yield str(obj["Key"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def _lines(self, bucket: str, key: str, *, raw: bool = False) -> Iterator[bytes]:
        """An object's lines as they download (``raw``: its chunks), errors translated."""
        what = f"download s3://{bucket}/{key}"
        with self.sdk_errors(what):
            body = self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            chunks = body.iter_chunks(chunk_size=READ_CHUNK)
            stream = chunks if raw else wire.iter_jsonl(chunks)
            while True:
                with self.sdk_errors(what):
                    item = next(stream, None)
                if item is None:
                    return
                yield item
        finally:
            body.close()

    def cancel(self, batch_id: str) -> None:
        """Stop the job (``Stopping`` then ``Stopped``); a job that has ended is left alone."""
        if self.poll(batch_id).terminal:
            return
        with self.sdk_errors(f"stop model invocation job {batch_id}"):
            self.clients.bedrock.stop_model_invocation_job(jobIdentifier=batch_id)

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The newest job whose name carries all of ``metadata`` (``ListModelInvocationJobs``
        searched by name, newest first), or None."""
        full = META_JOB in metadata and META_CHUNK in metadata
        name = codec.job_name(metadata) if full else metadata.get(META_JOB, "")
        if not name:
            return None
        token: str | None = None
        while True:
            with self.sdk_errors("list model invocation jobs"):
                page = self.clients.bedrock.list_model_invocation_jobs(
                    nameContains=name,
                    sortBy="CreationTime",
                    sortOrder="Descending",
                    maxResults=100,
                    **({"nextToken": token} if token else {}),
                )
            for summary in page.get("invocationJobSummaries") or []:
                if codec.name_matches(str(summary.get("jobName")), metadata):
                    return codec.job_id(str(summary["jobArn"]))
            token = page.get("nextToken")
            if not token:
                return None

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated control plane and S3 subset (see :mod:`polybatch_bedrock.sandbox`)."""
        from .sandbox import routes

        return routes(engine)

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """A complete profile against the sandbox. ``min_records`` is lowered to 1 there (the
        sandbox plays an account whose minimum quota is 1), so the 18-request demo runs without
        padding; real accounts keep Bedrock's 100 unless their quota says otherwise."""
        base = server_url + cls.sandbox_prefix
        return {
            "api_key": api_key,
            "base_url": base,
            "settings": {
                "region": SANDBOX_REGION,
                "role_arn": SANDBOX_ROLE,
                "s3_input_uri": f"s3://{SANDBOX_BUCKET}/input/",
                "s3_output_uri": f"s3://{SANDBOX_BUCKET}/output/",
                "s3_endpoint_url": base + "/s3",
                "min_records": 1,
            },
        }

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """botocore's endpoint variables and static credentials pointing boto3 at the sandbox."""
        base = server_url + cls.sandbox_prefix
        return {
            "AWS_ENDPOINT_URL_BEDROCK": base,
            cls.s3_endpoint_env: base + "/s3",
            "AWS_ACCESS_KEY_ID": api_key,
            "AWS_SECRET_ACCESS_KEY": PLACEHOLDER_SECRET,
            "AWS_REGION": SANDBOX_REGION,
        }


def _required(reply: Mapping[str, Any], key: str, action: str) -> Any:
    """``reply[key]``; a reply without it was cut short (botocore parses a truncated 200 body
    as an empty one), so the answer was lost: a transient ProviderConnectionError."""
    if key not in reply:
        raise ProviderConnectionError(
            f"{action} failed: the answer was incomplete (no {key})", provider=BedrockProvider.name
        )
    return reply[key]


def _no_expect_header(request: Any, **kwargs: Any) -> None:
    if "Expect" in request.headers:
        del request.headers["Expect"]


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())
