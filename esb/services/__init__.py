"""Services hosted on the bus that belong to the core (IHE actors live in profiles/)."""
