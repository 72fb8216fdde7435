"""Row -> message mappings for ``etl:`` jobs (and ``table:`` staging rows): one module per kind of view."""
