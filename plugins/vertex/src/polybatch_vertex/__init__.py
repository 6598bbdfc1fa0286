"""polybatch vertex plugin: Vertex AI batch prediction (Gemini), its codec and sandbox routes."""

from .provider import VertexProvider

__all__ = ["VertexProvider"]
