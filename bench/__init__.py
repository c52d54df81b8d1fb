"""Benchmarks. A package so that the worker can load the bench's jobs as ``-r bench.jobs``."""
