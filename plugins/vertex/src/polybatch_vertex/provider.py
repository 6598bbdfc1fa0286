"""Vertex AI batch prediction for Gemini, through ``google-genai`` (Vertex mode) and
``google-cloud-storage``.

The provider is the Gemini plugin's (:class:`~polybatch_gemini.provider.GeminiProvider`: request
codec, error table, display-name tags and their search, cancel, delete) with what Vertex does
differently:

- the client is ``genai.Client(vertexai=True, project=..., location=...)``; credentials come from
  google-auth's normal chain (Application Default Credentials: ``GOOGLE_APPLICATION_CREDENTIALS``,
  ``gcloud auth application-default login``, the metadata server), resolved in memory once and
  never written anywhere. An ``api_key`` is taken as an OAuth 2.0 *access token* instead (what
  ``gcloud auth print-access-token`` prints; the sandbox's key is one);
- input and output live in Cloud Storage under the ``bucket`` setting (``gs://bucket/prefix``):
  each provider batch writes ``<prefix>/polybatch/<job>/<chunk>-<nonce>/input.jsonl`` and Vertex
  writes its ``predictions*.jsonl`` / ``errors*.jsonl`` under ``.../output/``. Cleanup deletes
  that folder;
- ``batchPredictionJobs`` create / get / cancel / list / delete go through ``client.aio.batches``
  (``src="gs://..."``, ``config.dest``); batch ids are the jobs' resource names;
- partial results: Vertex exports completed rows continuously, so the rows of a job that failed,
  expired or was cancelled are collected as well, and every row it never ran gets one result
  (``cancelled``, ``expired`` or ``errored: batch_failed``) from the keys of the input file;
- at most :data:`MAX_CONCURRENT_JOBS` jobs in flight by default (the Gemini batch quota).

Embedding items are refused while planning: google-genai 3.6 refuses
``batches.create_embeddings`` in Vertex mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import google.auth
import requests
from google import genai
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import Credentials
from google.cloud import storage  # type: ignore[import-untyped]
from google.cloud.storage import exceptions as gcs_exceptions  # type: ignore[import-untyped]
from google.genai import types
from google.genai.client import AsyncClient
from google.oauth2.credentials import Credentials as TokenCredentials

from polybatch.errors import (
    ConfigError,
    CredentialsError,
    ItemValidationError,
    ProviderConnectionError,
    ProviderError,
)
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import META_CHUNK, META_JOB, BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import connection, failure, http
from polybatch_gemini.provider import GeminiProvider

from . import codec
from . import credentials as _credentials

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

#: concurrent Gemini batch prediction jobs per project and region; more are queued by Vertex
#: ([docs] cloud.google.com/vertex-ai/generative-ai/docs/batch-prediction, quotas)
MAX_CONCURRENT_JOBS = 8
DEFAULT_LOCATION = "us-central1"
DEFAULT_API_VERSION = "v1"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: the output files of a job, by base name
OUTPUT_FILE_RE = re.compile(r"^(predictions|errors)[^/]*\.jsonl$")
NO_EMBEDDINGS = (
    "vertex does not offer embedding batches through google-genai (batches.create_embeddings "
    "is refused in Vertex mode); send embeddings through the gemini or openai provider"
)
#: an OAuth 2.0 access token to use instead of ADC (the name Google's Terraform provider reads)
TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
#: the ``bucket`` setting's fallback
BUCKET_ENV = "POLYBATCH_VERTEX_BUCKET"
#: what a 401 or 403 from Vertex or Cloud Storage asks the user to check
IAM_HINT = (
    "the credentials and their IAM roles: Vertex AI User and Storage Object Admin on the bucket"
)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class VertexProvider(GeminiProvider):
    """Provider ``vertex``: Vertex AI batch prediction jobs for Gemini, input and output on GCS.

    Settings: ``project`` (else ``GOOGLE_CLOUD_PROJECT``, else the credentials' project),
    ``location`` (else ``GOOGLE_CLOUD_LOCATION``, else ``us-central1``), ``bucket``
    (``gs://bucket/prefix``, else ``POLYBATCH_VERTEX_BUCKET``; required), ``api_version``
    (default ``v1``), ``base_url`` (else ``GOOGLE_VERTEX_BASE_URL``), ``storage_endpoint`` (a
    Cloud Storage endpoint; the client also honours ``STORAGE_EMULATOR_HOST``), ``timeout``
    (seconds). The sandbox shows that ``AnonymousCredentials`` cannot serve google-genai (3.6
    refreshes a token-less credential and fails), so it is given its key as an access token.
    """

    name: ClassVar[str] = "vertex"
    #: an access token (the sandbox's key, or ``gcloud auth print-access-token``), then where ADC
    #: usually comes from; ``polybatch providers`` checks them (see :meth:`credentials`)
    credential_env: ClassVar[tuple[str, ...]] = (TOKEN_ENV, "GOOGLE_APPLICATION_CREDENTIALS")
    #: Vertex's Gemini batch-prediction docs: up to 200,000 requests and a 1 GB input file per
    #: job, which may wait queued and run up to 72 h before it expires. Not in the 2026-12 notes
    #: and not re-checked here: adjust ``chunk_size`` in a profile if a quota is lower.
    limits: ClassVar[Limits] = Limits(
        max_requests=200_000,
        max_bytes=1024 * 1024 * 1024,
        completion_windows=("72h",),
        custom_id_pattern=None,
    )
    default_max_in_flight: ClassVar[int | None] = MAX_CONCURRENT_JOBS
    results_after_failure: ClassVar[bool] = True
    supports_embeddings: ClassVar[bool] = False
    sandbox_prefix: ClassVar[str] = "/vertex"
    base_url_env: ClassVar[str | None] = "GOOGLE_VERTEX_BASE_URL"
    #: OAuth access tokens, besides Google API keys
    key_patterns = (  # type: ignore[assignment]
        *GeminiProvider.key_patterns,
        re.compile(r"\b(ya29\.)[0-9A-Za-z_\-.]{20,}"),
    )
    errors = {
        # Cloud Storage and google-api-core errors carry the HTTP status as ``code``
        api_exceptions.GoogleAPICallError: http(lambda e: e.code, lambda e: e.message),
        gcs_exceptions.InvalidResponse: http(lambda e: e.response.status_code),
        # a download whose checksum does not match: cut short, fetch it again
        gcs_exceptions.DataCorruption: connection(),
        requests.exceptions.RequestException: connection(),
        auth_exceptions.TransportError: connection(),
        auth_exceptions.RefreshError: failure(
            lambda e: (
                "the Google credentials could not be refreshed (a refused access token cannot "
                f"be; give a fresh one, or use Application Default Credentials): {e}"
            )
        ),
    }

    # -- settings and credentials -----------------------------------------------------------
    @property
    def location(self) -> str:
        """The Vertex region jobs run in."""
        value = self.settings.get("location") or os.environ.get("GOOGLE_CLOUD_LOCATION")
        return str(value or DEFAULT_LOCATION)

    @property
    def project(self) -> str:
        """The Google Cloud project (settings, ``GOOGLE_CLOUD_PROJECT``, the credentials')."""
        value = self.settings.get("project") or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not value:
            value = self._google[1]
        if not value:
            raise CredentialsError(
                "vertex: no Google Cloud project; set the profile's 'project' or "
                "GOOGLE_CLOUD_PROJECT"
            )
        return str(value)

    @property
    def bucket(self) -> tuple[str, str]:
        """(bucket, prefix) of the ``bucket`` setting, where inputs and outputs are written."""
        value = self.settings.get("bucket") or os.environ.get(BUCKET_ENV)
        if not value:
            raise ConfigError(
                "vertex: no Cloud Storage location; set the profile's 'bucket' (or "
                f"{BUCKET_ENV}) to gs://BUCKET/PREFIX (Vertex reads its input and writes its "
                "output there)"
            )
        try:
            return codec.split_gs(str(value))
        except ValueError as exc:
            raise ConfigError(f"vertex: setting 'bucket': {exc}") from None

    @functools.cached_property
    def _google(self) -> tuple[Credentials, str | None]:
        """(credentials, their project): the access token given, else ADC; resolved once."""
        token = self.api_key or os.environ.get(TOKEN_ENV)
        if token:
            self.remember_secret(token)
            return TokenCredentials(token=token), None  # type: ignore[no-untyped-call]
        try:
            return google.auth.default(scopes=SCOPES)
        except auth_exceptions.DefaultCredentialsError as exc:
            raise CredentialsError(
                "vertex: no Google credentials found (Application Default Credentials): run "
                "'gcloud auth application-default login', set GOOGLE_APPLICATION_CREDENTIALS, "
                f"or set {TOKEN_ENV} to an OAuth access token ({exc})"
            ) from None

    def credentials(self) -> Credentials:
        """The credentials both clients use (held in memory only)."""
        return self._google[0]

    @classmethod
    def credentials_present(cls, env: Mapping[str, str] | None = None) -> bool:
        """A token or key file in the environment, or gcloud's application-default login."""
        if super().credentials_present(env):
            return True
        return _credentials.credentials_present(env)

    @property
    def key_env(self) -> str | None:
        """What a refused request (401/403) asks the user to check."""
        return IAM_HINT

    def preflight(self) -> None:
        """The bucket, the project and the credentials must be there before any planning."""
        self.bucket  # noqa: B018 (raises ConfigError)
        self.project  # noqa: B018
        self.credentials()

    # -- the clients ------------------------------------------------------------------------
    def make_client(self) -> AsyncClient:
        """A new async google-genai client in Vertex mode for the running loop."""
        timeout = self.settings.get("timeout")
        options = types.HttpOptions(
            base_url=self.resolved_base_url(),
            api_version=str(self.settings.get("api_version", DEFAULT_API_VERSION)),
            timeout=int(float(timeout) * 1000) if timeout is not None else None,
        )
        client = genai.Client(
            vertexai=True,
            project=self.project,
            location=self.location,
            credentials=self.credentials(),
            http_options=options,
        )
        return client.aio

    @functools.cached_property
    def storage(self) -> storage.Client:
        """The (blocking) Cloud Storage client, built once; call it from worker threads."""
        endpoint = self.settings.get("storage_endpoint")
        return storage.Client(
            project=self.project,
            credentials=self.credentials(),
            client_options={"api_endpoint": str(endpoint)} if endpoint else None,
        )

    # -- items ------------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Refuse embedding items; chat items as Gemini checks them."""
        if item.kind == "embedding":
            raise ItemValidationError(NO_EMBEDDINGS, field="kind")
        super().validate_item(item, model)

    # -- the batch lifecycle ----------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Upload the lines to GCS, then create a batch prediction job reading them."""
        bucket, prefix = self.bucket
        job = _SAFE.sub("_", metadata.get(META_JOB, "adhoc"))
        chunk = _SAFE.sub("_", metadata.get(META_CHUNK, "0"))
        folder = "/".join(p for p in (prefix, "polybatch", job, f"{chunk}-{uuid.uuid4().hex[:8]}"))
        with self.sdk_errors("upload input file"):
            await asyncio.to_thread(self._upload, bucket, f"{folder}/input.jsonl", Path(lines_path))
        client = self.client
        # no SDK-level retry of the create: it carries no idempotency key (see GeminiProvider)
        config = types.CreateBatchJobConfig(
            display_name=codec.display_name(metadata),
            dest=codec.gs_uri(bucket, f"{folder}/output"),
            http_options=types.HttpOptions(retry_options=types.HttpRetryOptions(attempts=1)),
        )
        folder_uri = codec.gs_uri(bucket, folder)
        try:
            with self.sdk_errors("create batch"):
                created = await client.batches.create(
                    model=model, src=codec.gs_uri(bucket, f"{folder}/input.jsonl"), config=config
                )
        except ProviderError as exc:
            await self.drop_refused_upload(exc, folder_uri)
            raise
        return SubmittedBatch(batch_id=self._name(created), input_file_id=folder_uri)

    def _upload(self, bucket: str, name: str, path: Path) -> None:
        blob = self.storage.bucket(bucket).blob(name)
        blob.upload_from_filename(str(path), content_type="application/jsonl")

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The job's state, its completion stats and (for a failed job) the reason."""
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            job = await self.client.batches.get(name=batch_id)
        state = codec.batch_state(job.state)
        stats = job.completion_stats or types.CompletionStats()
        ok, failed = stats.successful_count or 0, stats.failed_count or 0
        message = None
        if state in ("failed", "expired"):
            detail = job.error.message if job.error is not None else None
            message = detail or f"the batch prediction job ended {state}"
        return BatchStatus(
            batch_id=batch_id,
            state=state,
            total=ok + failed + (stats.incomplete_count or 0),
            completed=ok,
            failed=failed,
            message=message,
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """The rows Vertex exported (each key once), then one result per row never run."""
        with self.sdk_errors(f"retrieve batch {batch_id}"):
            job = await self.client.batches.get(name=batch_id)
        state = codec.batch_state(job.state)
        model = codec.strip_model((job.model or "").rsplit("/models/", 1)[-1])
        seen: set[str] = set()
        out_dir = job.output_info.gcs_output_directory if job.output_info else None
        if out_dir:
            for uri in await self._output_files(out_dir):
                async for row in self._rows(batch_id, uri):
                    key = codec.row_key(row)
                    if key is not None and key in seen:
                        continue  # a row exported twice counts once
                    if key is not None:
                        seen.add(key)
                    yield codec.decode_row(
                        row, batch_id=batch_id, model=model, expired=state == "expired"
                    )
        if state not in ("cancelled", "expired", "failed") or job.src is None:
            return
        message = job.error.message if job.error is not None else None
        for uri in job.src.gcs_uri or []:
            async for row in self._rows(batch_id, uri):
                key = codec.row_key(row)
                if key is not None and key not in seen:
                    seen.add(key)
                    yield codec.leftover_result(key, state, batch_id=batch_id, message=message)

    async def _output_files(self, out_dir: str) -> list[str]:
        """The ``predictions*`` / ``errors*`` files of an output directory, predictions first."""
        bucket, prefix = codec.split_gs(out_dir)

        def names() -> list[str]:
            blobs = self.storage.list_blobs(bucket, prefix=f"{prefix}/" if prefix else None)
            return [b.name for b in blobs if OUTPUT_FILE_RE.match(b.name.rsplit("/", 1)[-1])]

        with self.sdk_errors(f"list the output files in {out_dir}"):
            found = await asyncio.to_thread(names)
        return [codec.gs_uri(bucket, n) for n in sorted(found, key=lambda n: ("errors" in n, n))]

    async def _rows(self, batch_id: str, uri: str) -> AsyncIterator[dict[str, Any]]:
        """The JSON rows of a GCS file, downloaded to a temporary file (memory stays flat)."""
        bucket, name = codec.split_gs(uri)
        with tempfile.TemporaryFile() as spool:
            with self.sdk_errors(f"download {uri} of {batch_id}"):
                await asyncio.to_thread(self._download, bucket, name, spool)
            spool.seek(0)
            for n, raw in enumerate(_lines(spool), 1):
                try:
                    row = json.loads(raw)
                except ValueError as exc:
                    raise ProviderConnectionError(
                        f"results of {batch_id}: line {n} of {uri} is not valid JSON",
                        provider=self.name,
                    ) from exc
                if isinstance(row, dict):
                    yield row

    def _download(self, bucket: str, name: str, spool: IO[bytes]) -> None:
        self.storage.bucket(bucket).blob(name).download_to_file(spool)

    async def sdk_delete_file(self, client: AsyncClient, file_id: str) -> None:
        """Delete every object under a batch's folder (``gs://bucket/prefix/...``)."""
        bucket, prefix = codec.split_gs(file_id)

        def delete() -> None:
            gcs = self.storage
            for blob in list(gcs.list_blobs(bucket, prefix=prefix + "/")):
                with contextlib.suppress(api_exceptions.NotFound):  # gone already: the goal
                    blob.delete()

        await asyncio.to_thread(delete)

    # -- the sandbox ------------------------------------------------------------------------
    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """The sandbox's key as the access token; its routes for Vertex and Cloud Storage."""
        from .sandbox import SANDBOX_BUCKET, SANDBOX_LOCATION, SANDBOX_PROJECT

        root = server_url + cls.sandbox_prefix
        return {
            "api_key": api_key,
            "base_url": root,
            "settings": {
                "project": SANDBOX_PROJECT,
                "location": SANDBOX_LOCATION,
                "bucket": f"gs://{SANDBOX_BUCKET}/batches",
                "storage_endpoint": root,
            },
        }

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """What a user's own clients need: google-genai's and google-cloud-storage's variables."""
        from .sandbox import SANDBOX_BUCKET, SANDBOX_LOCATION, SANDBOX_PROJECT

        root = server_url + cls.sandbox_prefix
        return {
            TOKEN_ENV: api_key,
            BUCKET_ENV: f"gs://{SANDBOX_BUCKET}/batches",
            "GOOGLE_VERTEX_BASE_URL": root,
            "STORAGE_EMULATOR_HOST": root,
            "GOOGLE_CLOUD_PROJECT": SANDBOX_PROJECT,
            "GOOGLE_CLOUD_LOCATION": SANDBOX_LOCATION,
        }

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The emulated Vertex and Cloud Storage APIs (see :mod:`polybatch_vertex.sandbox`)."""
        from .sandbox import routes

        return routes(engine)


def _lines(spool: IO[bytes]) -> Iterator[bytes]:
    for raw in spool:
        if raw.strip():
            yield raw
