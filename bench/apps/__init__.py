"""Applications served by the benchmark scenarios (imported by the servers as ``bench.apps.<module>:<attr>``)."""
