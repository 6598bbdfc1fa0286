"""Click options generated from the models that declare them: RequestDefaults and JobOptions.

Each option's name, type, bounds, default and help come from the model's field (``max_tokens``:
``--max-tokens``, an integer of at least 1, "Default max output tokens."), so a field added to
:class:`~polybatch.config.RequestDefaults` is a CLI option, a profile key and a ``submit()``
argument at once, with the same bounds everywhere. The parsed values are validated back into the
models (:func:`request_defaults`, :func:`job_options_from`).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .. import config as _config
from ..config import JobOptions, RequestDefaults

F = TypeVar("F", bound=Callable[..., Any])
_M = TypeVar("_M", bound=BaseModel)

#: fields set in files and Python only: a list, a JSON object, where the ledger lives, polling
NOT_FLAGS = frozenset({"stop", "response_format", "home", "poll_min", "poll_max", "queue_backoff"})
#: the request fields the CLI offers: every RequestDefaults field but those
REQUEST_FIELDS: tuple[str, ...] = tuple(
    n for n in RequestDefaults.model_fields if n not in NOT_FLAGS
)
#: the job options of ``run`` and ``submit``: every JobOptions field but those
JOB_FIELDS: tuple[str, ...] = tuple(n for n in JobOptions.model_fields if n not in NOT_FLAGS)
#: ``--profile`` names a profile: a set of these fields' values
PROFILE_OPTION = click.option(
    "-p", "--profile", help="A profile from polybatch.toml (or POLYBATCH_PROFILE)."
)
#: flags that are not the field's name spelled with dashes
FLAGS: dict[str, tuple[str, ...]] = {"model": ("-m", "--model")}


def _scalar(annotation: Any) -> Any:
    """``int`` for ``int | None``; the annotation itself when it is not an optional scalar."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else None
    return annotation


def _bound(field: FieldInfo, name: str) -> Any:
    """The field's ``ge``/``le``/``gt`` bound (pydantic keeps them as annotated-types metadata)."""
    return next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)


def click_option(name: str, field: FieldInfo, help: str | None = None) -> Callable[[F], F]:
    """The click option for one model field (``help`` instead of the field's description)."""
    decls = FLAGS.get(name, ("--" + name.replace("_", "-"),))
    kwargs: dict[str, Any] = {"help": help or field.description}
    scalar = _scalar(field.annotation)
    ge, le, gt = _bound(field, "ge"), _bound(field, "le"), _bound(field, "gt")
    if scalar is bool:
        kwargs["is_flag"] = True
    elif scalar is int:
        kwargs["type"] = click.IntRange(min=ge, max=le) if ge is not None or le is not None else int
    elif scalar in (float, Decimal):
        if ge is not None or le is not None or gt is not None:
            low = ge if ge is not None else gt
            kwargs["type"] = click.FloatRange(min=low, max=le, min_open=gt is not None)
        else:
            kwargs["type"] = float
    elif get_origin(scalar) is Literal:
        kwargs["type"] = click.Choice([str(a) for a in get_args(scalar)])
    elif scalar is not str:
        raise TypeError(f"no CLI option type for field {name!r}: {field.annotation}")
    if field.default is not None and scalar is not bool:
        kwargs["default"] = field.default
    return click.option(*decls, name, **kwargs)


def model_options(
    model: type[BaseModel], names: Sequence[str], *, help: Mapping[str, str] | None = None
) -> list[Callable[[F], F]]:
    """Options for the fields ``names`` of ``model``, in that order (``help``: per-name texts)."""
    return [click_option(n, model.model_fields[n], (help or {}).get(n)) for n in names]


def apply(fn: F, options: Sequence[Callable[[F], F]]) -> F:
    """Decorate ``fn`` with ``options`` so they show in the order given."""
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _pick(cls: type[_M], names: Sequence[str], values: Mapping[str, Any]) -> _M:
    given = {n: values[n] for n in names if values.get(n) is not None}
    return _config.validated(cls, given, "option")


def request_defaults(values: Mapping[str, Any]) -> RequestDefaults:
    """The request options parsed by click, as the model they were generated from."""
    return _pick(RequestDefaults, REQUEST_FIELDS, values)


def job_options_from(values: Mapping[str, Any], **more: Any) -> JobOptions:
    """The job options parsed by click (and ``more``, e.g. poll bounds), as a JobOptions."""
    return _pick(JobOptions, tuple(JobOptions.model_fields), {**values, **more})
