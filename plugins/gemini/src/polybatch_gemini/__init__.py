"""polybatch gemini plugin: the Gemini batch-mode adapter, its wire codec and sandbox routes."""

from .provider import GeminiProvider

__all__ = ["GeminiProvider"]
