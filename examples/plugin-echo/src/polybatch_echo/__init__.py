"""Example polybatch plugin: provider ``echo`` (see docs/writing-a-provider.md)."""

from .provider import EchoProvider

__all__ = ["EchoProvider"]
