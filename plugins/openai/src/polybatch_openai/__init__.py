"""polybatch openai plugin: OpenAI's and Azure OpenAI's Batch APIs through the official SDK, and their sandboxes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polybatch.provider_plugin import lazy_getattr

if TYPE_CHECKING:
    from .azure import AzureProvider
    from .provider import OpenAIProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
__getattr__ = lazy_getattr(__name__, {"AzureProvider": "azure", "OpenAIProvider": "provider"})

__all__ = ["AzureProvider", "OpenAIProvider"]
