"""Transport adapters, each registered by URI scheme under ``esb.adapters``."""
