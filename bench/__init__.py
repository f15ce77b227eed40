"""gpt2train's measuring tools; `python -m bench` lists them (bench/README.md)."""
