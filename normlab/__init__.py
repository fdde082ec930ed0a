"""normlab: a sandbox for testing the values and norms of LLM agents."""

__version__ = "0.1.0"
