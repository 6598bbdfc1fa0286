"""The emulated Azure OpenAI Files and Batches API: OpenAI's routes, Azure's paths, auth and quirks.

Mounted by the sandbox server at ``/azure`` (the sandbox's "resource endpoint"), serving both client
styles over one store (namespace ``azure``), as one Azure resource does:

- classic: ``/azure/openai/{files,batches}...?api-version=V`` with an ``api-key`` header;
- v1: ``/azure/openai/v1/{files,batches}...`` with ``Authorization: Bearer KEY`` (no api-version).

Either style also takes the other's header (Azure accepts a key as ``api-key`` on v1 and an Entra token
as a bearer on classic). A wrong or missing key gets Azure's 401.

Azure's quirks, on unless ``quirks=False`` (a strict-SDK test turns them off): upload answers ``201``
with file ``status: "pending"`` (later reads say ``processed``); absent output/error files are ``""``,
not null; a failed batch has null ``completed``/``failed`` counts; no ``usage`` on batches; responses
carry ``prompt_filter_results``/``content_filter_results``. Always: at most 100,000 requests per file,
file expiry of 14 to 30 days, ``completion_window`` must be ``24h``, one deployment per file
(``model_mismatch``), and ``body.model`` in results is the model behind the deployment, not its name.

With ``spec_shapes=True`` the routes speak Azure's own 2024-10-21 spec where it differs from OpenAI's:
a failed batch's ``errors.data`` is one error object (not a list) whose ``line`` is a string, and files
read back as ``running`` (a state of Azure's ``FileState`` that the SDK's types do not list).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch.sandbox.api import BatchRequest, Outcome
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine, SandboxFile
from polybatch.sandbox.model import SYNTHETIC_MODELS
from polybatch.sandbox.queue import TOKEN_LIMIT_EXCEEDED

from .sandbox import OpenAIApi

NAMESPACE = "azure"
MAX_REQUESTS = 100_000
#: seconds: Azure's bounds for expires_after / output_expires_after
EXPIRY_RANGE = (1_209_600, 2_592_000)
#: what api-version values look like (``2024-10-21``, ``2025-04-01-preview``, ``preview``)
_VERSION_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}(-preview)?|preview|latest)$")
_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_FILTERS_OK = {
    category: {"filtered": False, "severity": "safe"}
    for category in ("hate", "self_harm", "sexual", "violence")
}


def model_behind(deployment: str) -> str:
    """The model a sandbox deployment serves: the longest known model name inside its name.

    ``gpt-4o-mini-batch`` serves ``gpt-4o-mini``; a name holding no known model serves itself.
    """
    known = [m for m in SYNTHETIC_MODELS if m in deployment]
    return max(known, key=len) if known else deployment


class AzureApi(OpenAIApi):
    """OpenAI's handlers with Azure's paths, auth, limits and quirks; ``style`` is classic or v1."""

    max_requests = MAX_REQUESTS
    expiry_range = EXPIRY_RANGE

    def __init__(
        self, engine: SandboxEngine, *, style: str, quirks: bool = True, spec_shapes: bool = False
    ) -> None:
        # OpenAI's routes moved from ``/v1/...`` to ``/openai/...`` (classic) or ``/openai/v1/...``
        self.api_base = "/openai/v1" if style == "v1" else "/openai"
        super().__init__(engine, NAMESPACE)
        self.style = style
        self.quirks = quirks
        self.spec_shapes = spec_shapes

    # -- plumbing --------------------------------------------------------------------------
    def azure_error(self, status: int, message: str, code: str | None = None) -> Response:
        """Azure's gateway error shape: ``{"error": {"code": "401", "message": ...}}``."""
        return self.json({"error": {"code": code or str(status), "message": message}}, status)

    def presented_key(self, request: Request) -> str | None:
        """The ``api-key`` header, else a bearer token."""
        key = request.headers.get("api-key")
        return key if key is not None else super().presented_key(request)

    def denied(self, request: Request, presented: str | None) -> Response:
        return self.azure_error(401, _DENIED)  # never echo the presented key

    def guard(self, request: Request) -> Response | None:
        """The key check, then classic's required api-version."""
        refused = super().guard(request)
        if refused is not None or self.style != "classic":
            return refused
        version = request.query_params.get("api-version")
        if not version:
            # what Azure answers for a data-plane call without api-version (unverified)
            return self.azure_error(404, "Resource not found")
        if not _VERSION_RE.match(version):
            return self.azure_error(400, f"API version not supported: {version}", "BadRequest")
        return None

    # -- files -----------------------------------------------------------------------------
    def retrieved_file_object(self, f: SandboxFile) -> dict[str, Any]:
        """A read of a file: ``running`` in the spec's shapes (Azure is still importing it)."""
        obj = super().retrieved_file_object(f)
        return {**obj, "status": "running"} if self.spec_shapes else obj

    def upload_response(self, f: SandboxFile) -> Response:
        """Upload: Azure answers 201 with a ``pending`` file that later reads as ``processed``."""
        if not self.quirks:
            return super().upload_response(f)
        return self.json({**self.file_object(f), "status": "pending"}, 201)

    # -- batches ---------------------------------------------------------------------------
    def knows_model(self, model: str) -> bool:
        """Every name: on Azure a request's ``model`` is the resource's own deployment name."""
        return True

    def refuse_queue_full(self, message: str) -> Response | None:
        """Azure's fail-fast regions refuse a create over the enqueued-token quota: 400
        ``token_limit_exceeded`` (providers.md §3)."""
        return self.error(400, message, code=TOKEN_LIMIT_EXCEEDED)

    def parse_input(
        self, data: bytes, endpoint: str
    ) -> tuple[list[BatchRequest], list[dict[str, Any]]]:
        """OpenAI's checks, plus Azure's one deployment per file."""
        requests, errors = super().parse_input(data, endpoint)
        if errors:
            return requests, errors
        first = requests[0].body.get("model") if requests else None
        for req in requests:
            if req.body.get("model") != first:
                return [], [
                    {
                        "code": "model_mismatch",
                        "message": "The provided model deployment does not match the one of the "
                        "other requests in the file; every line must use the same deployment.",
                        "param": "model",
                        "line": req.index + 1,
                    }
                ]
        return requests, errors

    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        """OpenAI's answer, reporting the model behind the deployment (and content filters)."""
        outcome = super().run(req, batch)
        if not outcome.ok:
            return outcome
        body = dict(outcome.body)
        body["model"] = model_behind(str(body.get("model", "")))
        if self.quirks and "choices" in body:  # content filters apply to chat, not embeddings
            body["prompt_filter_results"] = [
                {"prompt_index": 0, "content_filter_results": _FILTERS_OK}
            ]
            body["choices"] = [
                {**choice, "content_filter_results": _FILTERS_OK} for choice in body["choices"]
            ]
        return replace(outcome, body=body)

    def batch_object(self, batch: SandboxBatch) -> dict[str, Any]:
        """The batch with Azure's spellings: ``""`` for absent files, null counts when failed."""
        obj = super().batch_object(batch)
        if not self.quirks:
            return obj
        for key in ("output_file_id", "error_file_id"):
            if obj[key] is None:
                obj[key] = ""
        if obj["status"] == "failed":
            obj["request_counts"] = {**obj["request_counts"], "completed": None, "failed": None}
        obj.pop("usage", None)
        errors = obj.get("errors")
        if self.spec_shapes and errors and errors.get("data"):
            # the spec's BatchErrors: ``data`` one BatchErrorData, its ``line`` a string
            first = dict(errors["data"][0])
            first["line"] = None if first.get("line") is None else str(first["line"])
            obj["errors"] = {**errors, "data": first}
        return obj


def azure_routes(
    engine: SandboxEngine, *, quirks: bool = True, spec_shapes: bool = False
) -> list[BaseRoute]:
    """Classic and v1 Azure routes over one store (mount them at ``/azure``); ``spec_shapes``:
    Azure's 2024-10-21 spec's shapes instead of OpenAI's (see the module docstring)."""
    classic = AzureApi(engine, style="classic", quirks=quirks, spec_shapes=spec_shapes)
    v1 = AzureApi(engine, style="v1", quirks=quirks, spec_shapes=spec_shapes)
    v1.attempts = classic.attempts  # one resource: a retried custom_id counts once, whichever style
    # v1 first: its literal "/openai/v1/..." paths must not be taken for classic ones
    return v1.routes() + classic.routes()
