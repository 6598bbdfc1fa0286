"""polybatch anthropic plugin: the Message Batches adapter, its wire codec and sandbox routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import AnthropicProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
_LAZY = {"AnthropicProvider": "provider"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AnthropicProvider"]
