"""polybatch openai plugin: OpenAI's and Azure OpenAI's Batch APIs through the official SDK, and their sandboxes."""

from .azure import AzureProvider
from .provider import OpenAIProvider

__all__ = ["AzureProvider", "OpenAIProvider"]
