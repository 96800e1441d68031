"""Factorisations and training modes: each module holds its batcher and its task."""
