"""Throughput benchmarks: each prints its results as ratios against a baseline served side by
side on the same machine (never asserted in tests). Run with `make bench` or
`python -m benchmarks [name ...]`."""
