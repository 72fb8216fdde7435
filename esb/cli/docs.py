"""esb docs commands (being written)."""
