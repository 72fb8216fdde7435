"""IHE actors hosted on the bus, one folder per IHE profile."""
