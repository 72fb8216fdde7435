"""The engine's HTTP servers, shared by the admin API and http:/soap: consumers."""
