"""Reading input files: neutral JSONL and OpenAI batch-format lines, streamed and validated.

Neutral records hold BatchItem fields (plus ``prompt``/``system`` shorthands); an embedding request
is ``{"kind": "embedding", "input": "...", "model": "..."}`` (and likewise ``response``,
``completion`` and ``moderation`` records: :mod:`polybatch.kinds`). OpenAI-format lines may target
``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``, ``/v1/completions`` and
``/v1/moderations`` (:data:`OPENAI_URLS`): their body is read as it is.

Every problem is reported as an :class:`~polybatch.errors.InputError` naming the file, the line and
the field, before anything is submitted. That includes what is valid JSON syntax to Python's
parser but no request any API takes (:func:`polybatch.items.json_problem`): ``NaN`` and
``Infinity`` anywhere in a record, lone surrogates (``"x\\ud800y"``) in its strings, nesting deeper
than :data:`~polybatch.items.MAX_JSON_DEPTH` (however deep: a line nested past Python's recursion
limit is refused the same way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import InputError
from .items import MAX_JSON_DEPTH, BatchItem, json_path, json_problem
from .kinds import KIND_SPECIFIC, OPENAI_BODY_FIELDS, REQUIRED, article, kind_problem

#: OpenAI batch-line ``url`` -> the kind of item it asks for (Azure's classic urls included)
OPENAI_URLS: dict[str, str] = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/embeddings": "embedding",
    "/v1/responses": "response",
    "/v1/completions": "completion",
    "/v1/moderations": "moderation",
}


#: loc parts pydantic adds for the member of a union it tried: not a field of the input
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list|dict|function-\w+)(\[.*\])?$")


def _field_path(loc: tuple[int | str, ...]) -> str:
    return json_path(tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p))))


#: a JSON string token or a bracket (what :func:`_outer_member` counts depth with)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _outer_member(text: str) -> str | None:
    """The top-level member of a JSON object line whose value nests deeper than the bound.

    For lines too deep for ``json.loads`` (it raises RecursionError): a scan of string tokens
    and brackets, on that error path only.
    """
    depth = 0
    key: str | None = None
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return key
        elif token in "]}":
            depth -= 1
        elif depth == 1:
            # the last string at the top level before a bracket opens is that member's key
            try:
                key = json.loads(token)
            except ValueError:
                key = None
    return None


def _check_json(data: dict[str, Any], *, path: str | None, line: int | None) -> None:
    problem = json_problem(data)
    if problem is not None:
        loc, reason = problem
        raise InputError(reason, path=path, line=line, field=json_path(loc) or None)


def item_from_dict(data: Any, *, path: str | None = None, line: int | None = None) -> BatchItem:
    """Validate one input record (neutral or OpenAI batch-format) into a BatchItem."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, got {type(data).__name__}", path=path, line=line)
    # the record as written (its own field names), before anything reads a value of it
    _check_json(data, path=path, line=line)
    record = dict(data)
    if "body" in record or "method" in record or "url" in record:
        record = _from_openai_line(record, path=path, line=line)
    elif record.get("kind", "chat") == "chat":
        if "prompt" in record:
            if "messages" in record:
                raise InputError(
                    "give either 'prompt' or 'messages', not both",
                    path=path,
                    line=line,
                    field="prompt",
                )
            prompt = record.pop("prompt")
            if not isinstance(prompt, str) or not prompt.strip():
                raise InputError("must be a non-empty string", path=path, line=line, field="prompt")
            record["messages"] = [{"role": "user", "content": prompt}]
        if "system" in record:
            system = record.pop("system")
            if not isinstance(system, str):
                raise InputError("must be a string", path=path, line=line, field="system")
            msgs = record.get("messages")
            if isinstance(msgs, list):
                record["messages"] = [{"role": "system", "content": system}, *msgs]
    kind = record.get("kind", "chat")
    if kind != "chat" and isinstance(kind, str) and kind in REQUIRED:
        needed = REQUIRED[kind]
        if needed not in record:
            raise InputError(
                f"missing: {article(kind)} request needs '{needed}'",
                path=path,
                line=line,
                field=needed,
            )
    elif kind == "chat" and "messages" not in record:
        raise InputError(
            "missing: give 'messages' or 'prompt'", path=path, line=line, field="messages"
        )
    if kind != "chat" and kind in REQUIRED:
        # the rules of the kind, with the field they are about (the model's own check names none)
        values = {k: v for k, v in record.items() if k in KIND_SPECIFIC and v is not None}
        problem = kind_problem(kind, values)
        if problem is not None:
            raise InputError(problem[1], path=path, line=line, field=problem[0])
    try:
        # strict: a JSON "10" is not a number and true is not a seed; coercing would hide mistakes
        return BatchItem.model_validate(record, strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(tuple(err["loc"])) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(msg, path=path, line=line, field=field) from None


def _from_openai_line(
    record: dict[str, Any], *, path: str | None, line: int | None
) -> dict[str, Any]:
    """Map ``{custom_id, method, url, body}`` onto a neutral record.

    The ``url`` gives the item's kind (:data:`OPENAI_URLS`). A chat line's ``body.model`` is
    dropped on purpose: the job's configured model decides, so the same file can run on any
    provider; the other kinds keep theirs as the item's ``model`` (an embeddings, moderation or
    instruct model is not the job's chat model). Unknown body fields are kept in ``extra``.
    """
    unknown = set(record) - {"custom_id", "method", "url", "body"}
    if unknown:
        raise InputError("unknown field", path=path, line=line, field=sorted(unknown)[0])
    if record.get("method", "POST") != "POST":
        raise InputError("must be POST", path=path, line=line, field="method")
    url = record.get("url", "/v1/chat/completions")
    kind = OPENAI_URLS.get(url) if isinstance(url, str) else None
    if kind is None:
        raise InputError(
            f"unsupported endpoint {url!r}: use one of {', '.join(OPENAI_URLS)}",
            path=path,
            line=line,
            field="url",
        )
    body = record.get("body")
    if not isinstance(body, dict):
        raise InputError("must be a JSON object", path=path, line=line, field="body")
    out: dict[str, Any] = {"extra": {}}
    if kind != "chat":
        out["kind"] = kind
    if "custom_id" in record:
        out["custom_id"] = record["custom_id"]
    fields = OPENAI_BODY_FIELDS[kind]
    for key, value in body.items():
        if key == "model":
            # chat lines: the job's model decides, so the file runs anywhere; the other endpoints
            # take models of their own (an embedding, moderation or instruct model): kept
            if kind != "chat" and isinstance(value, str):
                out["model"] = value
            continue
        if key in fields:
            out[fields[key]] = value
        else:
            out["extra"][key] = value
    return out


def read_items(path: str | Path) -> Iterator[BatchItem]:
    """Stream BatchItems from a JSONL file, one line at a time (blank lines are skipped)."""
    for item, _line in read_numbered_items(path):
        yield item


def read_numbered_items(path: str | Path) -> Iterator[tuple[BatchItem, int]]:
    """Stream (item, line number) pairs from a JSONL file; errors name file, line and field."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise InputError("no such file", path=name)
    if p.is_dir():
        raise InputError("is a directory, not a JSONL file", path=name)
    seen_any = False
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"not UTF-8 text (byte {exc.start})", path=name, line=lineno
                ) from None
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"invalid JSON: {exc.msg} (column {exc.colno})", path=name, line=lineno
                ) from None
            except RecursionError:
                raise InputError(
                    f"nested deeper than {MAX_JSON_DEPTH} levels",
                    path=name,
                    line=lineno,
                    field=_outer_member(text),
                ) from None
            seen_any = True
            yield item_from_dict(data, path=name, line=lineno), lineno
    if not seen_any:
        raise InputError("the file holds no requests", path=name)


def coerce_items(items: Iterable[BatchItem | dict[str, Any] | str]) -> Iterator[BatchItem]:
    """Accept BatchItems, dicts (neutral or OpenAI lines) or plain prompt strings."""
    for n, it in enumerate(items, start=1):
        if isinstance(it, BatchItem):
            yield it
        elif isinstance(it, str):
            yield item_from_dict({"prompt": it}, path="<items>", line=n)
        else:
            yield item_from_dict(it, path="<items>", line=n)
