"""Hypercorn config for the benchmarks (``--config python:bench.apps.hypercorn_unlimited``).

Hypercorn closes a keep-alive connection after ``keep_alive_max_requests`` (1000) requests; h2load
does not reconnect, so with the default every connection stops after 1000 requests and the rest
count as failed. The other servers have no such cap, so it is lifted here.
"""

keep_alive_max_requests = 2**31
