"""Data layer: Humdrum **kern parsing, corpora and their cache."""
