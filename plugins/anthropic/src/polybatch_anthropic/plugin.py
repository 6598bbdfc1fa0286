"""polybatch plugin entry point (filled in by the adapter)."""
