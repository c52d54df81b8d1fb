"""Code that runs inside each compared system's own virtual environment.

Each module here defines that system's bench job and pushes jobs through the system's public
API (``python -m bench.agents.NAME single|bulk|latency ...``). They import only the standard
library, redis-py and the system itself: never sidequest (except sidequest_agent) nor
bench.harness, whose dependencies the other environments do not have.
"""
