"""An integration engine for regional medical-imaging platforms."""

__version__ = "0.1.0"
