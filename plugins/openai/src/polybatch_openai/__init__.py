"""polybatch openai plugin: OpenAI's Batch API through the official SDK, and its sandbox."""

from .provider import OpenAIProvider

__all__ = ["OpenAIProvider"]
