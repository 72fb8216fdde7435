"""``table:``: a database staging table as an endpoint (A1.13, A2.10).

``from: table:his_patients?url=${HIS_DB_URL}`` polls a table or updatable
view for rows whose status is pending, hands each over as a JSON message and
marks it done or failed (:mod:`adapters.table.consumer`); several engine nodes
may poll one table (:mod:`adapters.table.claim`). ``to: table:NAME?url=...``
inserts or upserts rows (:mod:`adapters.table.producer`). Any SQLAlchemy URL
works, ODBC connection strings included (:mod:`adapters.table.odbc`); the
engines are shared with the ``etl:`` adapter (:mod:`adapters.table.database`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.table.consumer import TableConsumer
from adapters.table.database import reflect_table, staging_engine
from adapters.table.options import TableOptions, problems, split_query
from adapters.table.producer import TableProducer
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.uri import EndpointUri, UriError, build_options

__all__ = ["TableAdapter", "TableConsumer", "TableOptions", "TableProducer", "reflect_table", "staging_engine"]


class TableAdapter(Adapter):
    scheme = "table"
    Options: ClassVar[type[Any]] = TableOptions
    summary = "Poll a database staging table (claimed safely across nodes) or insert/upsert rows into one."

    def endpoint(self, uri: EndpointUri) -> Endpoint:
        """Options from the URI, with the database URL taken verbatim (see :func:`split_query`)."""
        values = dict(self.path_options(uri))
        query = uri.raw.strip().partition("?")[2]
        given, _ = split_query(query)
        values.update(given)
        return Endpoint(uri, build_options(self.Options, values, where=self.scheme))

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        if uri.host or uri.raw.strip()[len(uri.scheme) + 1 :].startswith("//"):
            raise UriError(f"'{uri.without_query()}': write table:NAME?url=... (no '//')")
        return {"table": uri.path}

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...] | None:
        return None  # several routes may poll one table with different pending values

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        query = endpoint.uri.raw.strip().partition("?")[2]
        given, swallowed = split_query(query)
        names = {key.replace("-", "_") for key in given}
        return problems(endpoint.options, names, swallowed, consumer=consumer)

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        settings = self.context.settings
        return TableConsumer(
            endpoint.options, handler, route_id, settings.node_id, stop_timeout=settings.shutdown_timeout
        )

    def producer(self, endpoint: Endpoint) -> Producer:
        return TableProducer(endpoint.options)
