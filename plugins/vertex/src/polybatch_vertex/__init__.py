"""polybatch vertex plugin: Vertex AI batch prediction (Gemini), its codec and sandbox routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polybatch.provider_plugin import lazy_getattr

if TYPE_CHECKING:
    from .provider import VertexProvider

#: imported on first access, so that loading the plugin (``polybatch --help``) imports no SDK
__getattr__ = lazy_getattr(__name__, {"VertexProvider": "provider"})

__all__ = ["VertexProvider"]
