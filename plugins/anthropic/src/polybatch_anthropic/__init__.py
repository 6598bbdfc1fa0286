"""polybatch anthropic plugin: the Message Batches adapter, its wire codec and sandbox routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polybatch.provider_plugin import lazy_getattr

if TYPE_CHECKING:
    from .provider import AnthropicProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
__getattr__ = lazy_getattr(__name__, {"AnthropicProvider": "provider"})

__all__ = ["AnthropicProvider"]
