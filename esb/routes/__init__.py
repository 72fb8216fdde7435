"""Route files: loading with positions, the typed model, and lint."""
