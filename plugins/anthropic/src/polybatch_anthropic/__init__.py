"""polybatch anthropic plugin: the Message Batches adapter, its wire codec and sandbox routes."""

from .provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
