"""polybatch openai plugin."""
