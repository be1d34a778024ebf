"""The one-machine harness: local stack, processes, traffic, demo, benchmark and drills."""
