"""Benchmarks: dataset loaders, accuracy metrics and reports (numpy + OpenCV only)."""
