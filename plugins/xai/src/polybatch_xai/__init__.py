"""polybatch plugin: provider ``xai`` (xAI's Batch API)."""
