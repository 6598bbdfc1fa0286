"""polybatch plugin: provider ``openrouter`` (OpenRouter's Batch API)."""
