"""The networks, nothing else: no loading, no I/O."""
