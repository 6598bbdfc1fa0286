"""polybatch mistral plugin: Mistral's batch jobs through the official SDK, and its sandbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polybatch.provider_plugin import lazy_getattr

if TYPE_CHECKING:
    from .provider import MistralProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
__getattr__ = lazy_getattr(__name__, {"MistralProvider": "provider"})

__all__ = ["MistralProvider"]
