"""Pseudo labels: the per-pixel and per-mask labelers and the background threshold (sweep, storage, use)."""
