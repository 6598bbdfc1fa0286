"""polybatch bedrock plugin: AWS Bedrock batch inference, its wire codec and sandbox routes."""

from .provider import BedrockProvider

__all__ = ["BedrockProvider"]
