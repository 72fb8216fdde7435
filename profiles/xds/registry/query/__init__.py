"""ITI-18 Registry Stored Query over the XDS registry tables (ITI TF-2a 3.18).

- ``values``: the slot-value syntax (quoted strings, numbers, parenthesised lists);
- ``parameters``: every stored query and its parameters, as a table;
- ``binding``: a request's Slots checked against the table, typed, with the XDS error codes;
- ``filters``, ``finders``, ``getters``: the SQL (SQLAlchemy Core, bound values only);
- ``answer``: ObjectRef / LeafClass responses (current status, merged patient IDs);
- ``service``: :class:`StoredQueries`, the entry point.
"""

from profiles.xds.registry.query.service import StoredQueries

__all__ = ["StoredQueries"]
