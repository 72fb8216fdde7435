"""esb testing commands (being written)."""
