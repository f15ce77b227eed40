"""Tokenizer, shard loaders, dataset preparation and HellaSwag."""
