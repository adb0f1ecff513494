"""Side-by-side benchmark harness for django-granian and its peers: ``python -m bench --help``.

Kept import-light on purpose: benchmark apps live in ``bench.apps`` and are imported by the servers.
"""
