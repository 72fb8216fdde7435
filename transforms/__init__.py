"""XSLT and Python transforms shipped with the engine."""
