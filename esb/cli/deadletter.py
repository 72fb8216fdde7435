"""esb deadletter commands (being written)."""
