"""polybatch bedrock plugin: AWS Bedrock batch inference, its wire codec and sandbox routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polybatch.provider_plugin import lazy_getattr

if TYPE_CHECKING:
    from .provider import BedrockProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
__getattr__ = lazy_getattr(__name__, {"BedrockProvider": "provider"})

__all__ = ["BedrockProvider"]
