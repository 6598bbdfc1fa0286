"""Example polybatch plugin: provider ``acme`` (see docs/writing-a-provider.md)."""
