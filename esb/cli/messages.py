"""esb messages commands (being written)."""
