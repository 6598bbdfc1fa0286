"""polybatch mistral plugin: Mistral's batch jobs through the official SDK, and its sandbox."""

from .provider import MistralProvider

__all__ = ["MistralProvider"]
