"""Plain views of results: counts by status, and OpenAI batch-output lines for export.

Usage and cost tables live in :mod:`polybatch.pricing.tables` (rows) and
:mod:`polybatch.jobs.costs` (over jobs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .items import BatchResult


def status_counts(results: Iterable[BatchResult]) -> dict[str, int]:
    """How many results have each status."""
    out: dict[str, int] = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def to_openai(r: BatchResult) -> dict[str, Any]:
    """A result as an OpenAI batch-output line (a dict: ``json.dumps`` it for a JSONL file), for
    code written against OpenAI's format; ``polybatch results JOB --format openai`` writes the same::

        lines = [polybatch.to_openai(r) for r in job.results()]

    OpenAI results keep their raw body; other providers' results get a chat.completion body
    built from the neutral fields (prompt_tokens counts all input, cached included, as
    OpenAI's does).
    """
    rid = f"batch_req_{r.custom_id}"
    if r.ok:
        body = (
            r.response if r.provider in ("openai", "azure") and r.response else _completion_body(r)
        )
        return {
            "id": rid,
            "custom_id": r.custom_id,
            "response": {"status_code": 200, "request_id": rid, "body": body},
            "error": None,
        }
    err = r.error
    code = err.code if err else r.status
    message = err.message if err else r.status
    if r.status == "errored" and err is not None and err.status_code is not None:
        body = {"error": {"message": message, "type": code, "param": None, "code": code}}
        return {
            "id": rid,
            "custom_id": r.custom_id,
            "response": {"status_code": err.status_code, "request_id": rid, "body": body},
            "error": None,
        }
    if r.status == "expired":
        code = "batch_expired"
    elif r.status == "cancelled":
        code = "batch_cancelled"
    return {
        "id": rid,
        "custom_id": r.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }


def _completion_body(r: BatchResult) -> dict[str, Any]:
    u = r.usage
    return {
        "id": f"chatcmpl-{r.custom_id}",
        "object": "chat.completion",
        "model": r.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": r.text, "refusal": None},
                "finish_reason": r.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": u.total_input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        },
    }
