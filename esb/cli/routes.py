"""esb routes commands (being written)."""
