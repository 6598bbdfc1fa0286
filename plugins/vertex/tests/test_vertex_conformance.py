"""The shared provider conformance suite, run against VertexProvider and its sandbox."""

from __future__ import annotations

from polybatch.items import BatchItem
from polybatch.testing import ProviderConformance
from polybatch_vertex.provider import VertexProvider


class TestVertexConformance(ProviderConformance):
    """VertexProvider through google-genai (Vertex mode) and google-cloud-storage."""

    provider_class = VertexProvider
    model = "gemini-2.5-flash"
    #: Vertex batch prediction takes no embedding items through google-genai
    bad_item = BatchItem.model_validate(
        {"custom_id": "an-embedding", "kind": "embedding", "input": "hello"}
    )
    supports_cancel = True
    supports_find_batch = True
    #: inputs live in the sandbox's emulated Cloud Storage (clean-up: test_vertex_provider.py)
    uploads_in_engine_files = False
    #: a well-formed job name the sandbox does not know (a bare id is refused by the SDK itself)
    missing_batch_id = "projects/polybatch-sandbox/locations/us-central1/batchPredictionJobs/404"
