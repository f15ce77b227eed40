"""gpt2train: train GPT-2-class language models with llm.c's command line and files, on PyTorch."""

__version__ = "0.1.0"
