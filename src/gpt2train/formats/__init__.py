"""File formats: llm.c token shards and model files, HuggingFace conversion."""
