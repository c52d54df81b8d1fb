"""Job modules that test worker subprocesses load with ``-r``."""
