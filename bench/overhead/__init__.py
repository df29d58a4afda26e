"""Gateway overhead benchmark: added latency, throughput, memory and the cost of history."""
