"""Security baseline (issue 7): certificates and node authentication, users and roles, consistent time."""
