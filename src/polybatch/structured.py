"""Structured outputs: strict JSON schemas from pydantic models, and references to a model
class that survive a restart (``module:QualName``)."""

from __future__ import annotations

import copy
import functools
import importlib
import re
from typing import Any

from pydantic import BaseModel, ValidationError

#: ``module:QualName`` (what :func:`model_ref` writes and :func:`import_model` reads)
REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
#: json_schema names providers accept (OpenAI's rule, the narrowest)
_SCHEMA_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


# -- structured outputs: schemas from pydantic models, and references that survive a restart --
def strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` in the "strict" form structured outputs need.

    Every object gets ``additionalProperties: false`` and lists all its properties as required
    (optional fields stay nullable through their ``anyOf``); ``default: null`` is dropped and a
    ``$ref`` with sibling keys is inlined. The same rules as the openai SDK's
    ``to_strict_json_schema``, kept here so that the core stays provider-neutral.
    """
    root = copy.deepcopy(schema)
    out: dict[str, Any] = _strict(root, root)
    return out


def _strict(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strict(n, root) for n in node]
    if not isinstance(node, dict):
        return node
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            node[key] = {k: _strict(v, root) for k, v in node[key].items()}
    if node.get("type") == "object" and "additionalProperties" not in node:
        node["additionalProperties"] = False
    props = node.get("properties")
    if isinstance(props, dict):
        node["required"] = list(props)
        node["properties"] = {k: _strict(v, root) for k, v in props.items()}
    for key in ("items", "anyOf", "allOf", "oneOf", "prefixItems"):
        if key in node:
            node[key] = _strict(node[key], root)
    if "default" in node and node["default"] is None:
        del node["default"]
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1 and ref.startswith("#/"):
        # strict mode refuses "$ref" next to other keys: inline the target, local keys winning
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {**copy.deepcopy(target), **node}
        del merged["$ref"]
        return _strict(merged, root)
    return node


def json_schema_format(model: type[BaseModel], *, name: str | None = None) -> dict[str, Any]:
    """The ``response_format`` asking for replies that validate as ``model`` (strict JSON schema)."""
    label = _SCHEMA_NAME_BAD.sub("_", name or model.__name__)[:64] or "response"
    return {
        "type": "json_schema",
        "json_schema": {
            "name": label,
            "schema": strict_json_schema(model.model_json_schema()),
            "strict": True,
        },
    }


def model_ref(model: type[BaseModel]) -> str | None:
    """``"module:QualName"`` for a class another process can import, else None.

    Classes defined inside a function cannot be found again by name: results of such items are
    parsed with :meth:`BatchResult.parsed_as` instead. Classes of ``__main__`` (a script, a
    notebook) are found again wherever ``__main__`` defines them, as it does in the process that
    submitted the job.
    """
    qualname = model.__qualname__
    if "<locals>" in qualname:
        return None
    return f"{model.__module__}:{qualname}"


@functools.lru_cache(maxsize=256)
def import_model(ref: str) -> type[BaseModel]:
    """The pydantic model class named by ``"module:QualName"``.

    Raises ImportError (module or attribute missing) or TypeError (not a pydantic model).
    """
    if not REF_RE.match(ref):
        raise ImportError(f"{ref!r} is not a 'module:ClassName' reference")
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {qualname!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        raise TypeError(f"{ref!r} is not a pydantic model class")
    return obj


def validation_message(exc: ValidationError) -> str:
    """pydantic's message on one line, without its documentation links (it goes in tables)."""
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )
    n = exc.error_count()
    return f"{n} validation error{'s' if n != 1 else ''} for {exc.title}: {problems}"
