"""Kafka at the edges: client settings built in one place (config.py), and the small readers
the workers and tools share (io.py: the tail of a partition, committed and end offsets)."""
