"""Fault tests: worker subprocesses, a fault proxy and an out-of-band ledger (see harness.py)."""
