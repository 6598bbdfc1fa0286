"""Plain summaries of results: counts by status and token totals by provider and model.

Pure functions build rows; rendering is separate, so the same rows serve tables, CSV and JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prettytable import PrettyTable

from .items import BatchResult, Usage


@dataclass
class UsageRow:
    """Totals for one (provider, model) group."""

    provider: str
    model: str
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    usage: Usage = field(default_factory=Usage)


def usage_rows(results: Iterable[BatchResult], *, default_model: str = "?") -> list[UsageRow]:
    """Group results by (provider, reported model) and add up counts and tokens."""
    groups: dict[tuple[str, str], UsageRow] = {}
    for r in results:
        key = (r.provider or "?", r.model or default_model)
        row = groups.get(key)
        if row is None:
            row = groups[key] = UsageRow(provider=key[0], model=key[1])
        row.requests += 1
        row.succeeded += r.ok
        row.failed += not r.ok
        row.usage = row.usage + r.usage
    return [groups[k] for k in sorted(groups)]


def status_counts(results: Iterable[BatchResult]) -> dict[str, int]:
    """How many results have each status."""
    out: dict[str, int] = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def render_usage_table(rows: list[UsageRow]) -> str:
    """A prettytable of request counts and token totals, with a total row."""
    t = PrettyTable()
    t.field_names = [
        "provider",
        "model",
        "requests",
        "ok",
        "failed",
        "input",
        "cached",
        "cache write",
        "output",
    ]
    total = UsageRow(provider="TOTAL", model="")
    for row in rows:
        t.add_row(_cells(row))
        total.requests += row.requests
        total.succeeded += row.succeeded
        total.failed += row.failed
        total.usage = total.usage + row.usage
    if len(rows) > 1:
        t.add_row(_cells(total), divider=False)
    for name in t.field_names[2:]:
        t.align[name] = "r"
    return t.get_string()


def _cells(row: UsageRow) -> list[object]:
    u = row.usage
    return [
        row.provider,
        row.model,
        row.requests,
        row.succeeded,
        row.failed,
        f"{u.input_tokens:,}",
        f"{u.cached_input_tokens:,}",
        f"{u.cache_write_tokens + u.cache_write_1h_tokens:,}",
        f"{u.output_tokens:,}",
    ]


def openai_output_line(r: BatchResult) -> dict[str, Any]:
    """A result as an OpenAI batch-output line, for users migrating from OpenAI's format.

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
    elif r.status == "canceled":
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
