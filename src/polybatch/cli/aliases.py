"""Old option names that still work, hidden from ``--help`` (renames are listed in CHANGELOG.md).

One name per concept across the commands: when an option is renamed, its old spelling stays as a
hidden alias that fills the new option, so scripts written for the old name keep running.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: old spelling -> the name that replaced it (the command it belongs to, for the CHANGELOG)
RENAMED: dict[str, str] = {
    "sandbox --rate": "sandbox --sandbox-rate",
    "run/submit/estimate --system": "--system-prompt",
    "retry --rounds": "retry --retry-failed",
    "results --format neutral|openai": "results --schema neutral|openai",
}


def hidden_alias(old: str, new: str, **option: Any) -> Callable[[F], F]:
    """A hidden option ``old`` whose value, when given, is passed as the parameter ``new``.

    ``option`` are click's option settings (``type``, ``is_flag``...), as the new option has them.
    """
    dest = f"old_{new}"

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(dest, None)
            if value is not None and value is not False:
                kwargs[new] = value
            return fn(*args, **kwargs)

        opt = click.option(old, dest, hidden=True, default=None, **option)
        return opt(wrapper)  # type: ignore[return-value]

    return decorate
