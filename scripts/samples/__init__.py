"""Helpers of ``scripts/build_samples.py``: data, networks, training, exporters, manifest."""
