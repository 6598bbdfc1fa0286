"""Reading input files: neutral JSONL and OpenAI batch-format lines, streamed and validated.

Neutral records hold BatchItem fields (plus ``prompt``/``system`` shorthands); an embedding request
is ``{"kind": "embedding", "input": "...", "model": "..."}`` (and likewise ``response``,
``completion`` and ``moderation`` records: :mod:`polybatch.kinds`). OpenAI-format lines may target
``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``, ``/v1/completions`` and
``/v1/moderations`` (:data:`OPENAI_URLS`): their body is read as it is. Other libraries' shapes
are read too (:mod:`polybatch.shapes`): ``{"id": ..., "content": [messages]}`` lines and bare
message lists (``[{"role", "content"}, ...]``), which get the stable id ``item-<n>`` (their
position in the input) like any record without one.

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
from .shapes import ShapeError, expected, neutral_record

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


def _check_json(data: dict[str, Any] | list[Any], *, path: str | None, line: int | None) -> None:
    problem = json_problem(data)
    if problem is not None:
        loc, reason = problem
        raise InputError(reason, path=path, line=line, field=json_path(loc) or None)


def _shape_of(data: Any) -> str | None:
    """What the record's ``messages`` were called as written: ``content`` (the ``{"id",
    "content"}`` shape), ``""`` (a bare list of messages), or None (``messages`` itself)."""
    if isinstance(data, list):
        return ""
    if isinstance(data, dict) and "content" in data and not {"messages", "body"} & set(data):
        return "content"
    return None


def _as_written(field: str | None, shape: str | None) -> str | None:
    """``field`` (a path in the neutral record) as the record's own shape spells it."""
    if field is None or shape is None or not field.startswith("messages"):
        return field
    rest = field.removeprefix("messages")
    return (shape + rest).removeprefix(".") or None


def item_from_dict(
    data: Any, *, path: str | None = None, line: int | None = None, keep_model: bool = False
) -> BatchItem:
    """Validate one input record into a BatchItem: neutral (with the shorthands of
    :mod:`polybatch.shapes`), OpenAI batch-format, ``{"id", "content"}``, or a bare message list.

    ``keep_model``: an OpenAI line's ``body.model`` becomes the item's model (for a job that
    names no model: see :func:`input_model`); otherwise it is dropped."""
    if not isinstance(data, dict | list):
        raise InputError(expected(type(data).__name__), path=path, line=line)
    # the record as written (its own field names), before anything reads a value of it
    _check_json(data, path=path, line=line)
    shape = _shape_of(data)
    if isinstance(data, dict) and ("body" in data or "method" in data or "url" in data):
        record = _from_openai_line(dict(data), path=path, line=line, keep_model=keep_model)
    else:
        try:
            record = neutral_record(data)
        except ShapeError as exc:
            raise InputError(exc.reason, path=path, line=line, field=exc.field) from None
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
        field = _as_written(_field_path(tuple(err["loc"])) or None, shape)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(msg, path=path, line=line, field=field) from None


def _from_openai_line(
    record: dict[str, Any], *, path: str | None, line: int | None, keep_model: bool = False
) -> dict[str, Any]:
    """Map ``{custom_id, method, url, body}`` onto a neutral record.

    The ``url`` gives the item's kind (:data:`OPENAI_URLS`). A chat line's ``body.model`` is
    dropped unless ``keep_model``: the job's configured model decides, so the same file can run on
    any provider; a job that names none runs each line on its own ``body.model`` (at OpenAI). The
    other kinds keep theirs as the item's ``model`` (an embeddings, moderation or instruct model
    is not the job's chat model). Unknown body fields are kept in ``extra``.
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
            # chat lines: the job's model decides (unless keep_model), so the file runs anywhere;
            # the other endpoints take models of their own (embedding, moderation, instruct): kept
            if keep_model or (kind != "chat" and isinstance(value, str)):
                out["model"] = value
            continue
        if key in fields:
            out[fields[key]] = value
        else:
            out["extra"][key] = value
    return out


def input_model(items: Any) -> str | None:
    """``openai:<body.model>`` of the first line of an OpenAI batch-format input file, else None.

    What such a file runs on when neither the job, the environment nor a profile names a model
    (the format is OpenAI's; each line then keeps its own ``body.model``). Anything unreadable
    is None here: planning reports it with its file and line.
    """
    if not isinstance(items, str | Path):
        return None
    try:
        with Path(items).open("rb") as fh:
            first = next((raw for raw in fh if raw.strip()), b"")
        data = json.loads(first.removeprefix(b"\xef\xbb\xbf") or b"null")
    except (OSError, ValueError, RecursionError):
        return None
    body = data.get("body") if isinstance(data, dict) else None
    model = body.get("model") if isinstance(body, dict) else None
    return f"openai:{model}" if isinstance(model, str) and model.strip() else None


def read_items(path: str | Path) -> Iterator[BatchItem]:
    """Stream BatchItems from a JSONL file, one line at a time (blank lines are skipped)."""
    for item, _line in read_numbered_items(path):
        yield item


def read_numbered_items(
    path: str | Path, *, keep_model: bool = False
) -> Iterator[tuple[BatchItem, int]]:
    """Stream (item, line number) pairs from a JSONL file; errors name file, line and field
    (``keep_model``: see :func:`item_from_dict`)."""
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
            yield item_from_dict(data, path=name, line=lineno, keep_model=keep_model), lineno
    if not seen_any:
        raise InputError("the file holds no requests", path=name)


def coerce_items(
    items: Iterable[BatchItem | dict[str, Any] | list[Any] | str],
) -> Iterator[BatchItem]:
    """Accept BatchItems, dicts (any record shape), message lists or plain prompt strings."""
    for n, it in enumerate(items, start=1):
        if isinstance(it, BatchItem):
            yield it
        elif isinstance(it, str):
            yield item_from_dict({"prompt": it}, path="<items>", line=n)
        else:
            yield item_from_dict(it, path="<items>", line=n)
