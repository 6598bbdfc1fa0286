"""The shapes a request may be written in besides a full neutral record, turned into one.

One place for every shorthand, used both by :class:`~polybatch.items.BatchItem` (``BatchItem(
prompt="...")``) and by the input readers (:mod:`polybatch.inputs`), which name the file and line:

- ``{"prompt": "...", "system": "..."}``: a plain prompt is one user message, a ``system``
  string a system message before the others;
- ``{"id": ..., "content": [messages]}``: the record shape other batch libraries write (``id``
  is the custom_id; ``content`` the messages, or one prompt string);
- ``[{"role": ..., "content": ...}, ...]``: a bare list of messages, without an id.

Records without an id get the planner's stable id, ``item-<n>``: ``n`` is the request's
position in the input (1-based, blank lines not counted), so the same file gives the same ids.
"""

from __future__ import annotations

from typing import Any

#: the keys that mark a record as written in a shorthand
_SHORTHANDS = frozenset({"prompt", "system", "content"})


class ShapeError(ValueError):
    """A shorthand is malformed; ``field`` names the field of the record as written."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message
        self.field = field


def expected(got: str) -> str:
    """The message for a record that is neither an object nor a list of messages."""
    return f"expected a JSON object (or a list of messages), got {got}"


def neutral_record(data: Any) -> Any:
    """``data`` with its shorthands expanded into neutral BatchItem fields (a copy; anything that
    is not a shorthand is returned as it is, for validation to judge)."""
    if isinstance(data, list):
        if not data:
            raise ShapeError("an empty list: a list of messages needs at least one message")
        for i, message in enumerate(data):
            if not isinstance(message, dict) or "role" not in message:
                what = "an object without 'role'" if isinstance(message, dict) else None
                raise ShapeError(expected(what or type(message).__name__), f"[{i}]")
        return {"messages": data}
    if not isinstance(data, dict) or not _SHORTHANDS & data.keys():
        return data
    if data.get("kind", "chat") != "chat":
        return data  # the shorthands are chat's (a completion's own field is named prompt)
    record = dict(data)
    if "content" in record and not {"messages", "body"} & set(record):
        _from_id_content(record)
    if "prompt" in record:
        prompt = record.pop("prompt")  # null: not given (a full dump of a BatchItem has it)
        if prompt is not None and "messages" in record:
            raise ShapeError("give either 'prompt' or 'messages', not both", "prompt")
        if prompt is not None:
            if not isinstance(prompt, str) or not prompt.strip():
                raise ShapeError("must be a non-empty string", "prompt")
            record["messages"] = [{"role": "user", "content": prompt}]
    if "system" in record:
        system = record.pop("system")
        if system is not None:
            if not isinstance(system, str):
                raise ShapeError("must be a string", "system")
            msgs = record.get("messages")
            if isinstance(msgs, list):
                record["messages"] = [{"role": "system", "content": system}, *msgs]
    return record


def _from_id_content(record: dict[str, Any]) -> None:
    """``{"id", "content"}`` in place: ``id`` becomes the custom_id, ``content`` the messages."""
    content = record.pop("content")
    if isinstance(content, str):
        record["prompt"] = content
    elif isinstance(content, list):
        record["messages"] = content
    else:
        raise ShapeError("must be a list of messages or a prompt string", "content")
    if "id" in record:
        if "custom_id" in record:
            raise ShapeError("give either 'id' or 'custom_id', not both", "id")
        cid = record.pop("id")
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        if not isinstance(cid, str):
            raise ShapeError("must be a string or an integer", "id")
        record["custom_id"] = cid
