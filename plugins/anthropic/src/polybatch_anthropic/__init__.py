"""polybatch anthropic plugin."""
