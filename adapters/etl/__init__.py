"""``etl:VIEW?url=...&watermark=updated_at&key=patient_no``: extract a hospital view into a route.

A job reads the rows of a view (patients, visits, orders, reports, image
indexes) whose watermark moved past its checkpoint, in (watermark, key) order,
``batch`` at a time, and hands each row to the route as a JSON message; the
route standardizes, maps and loads it (``service:empi/feed``, the registry,
the archive index). Historical backfills start at ``since``; daily runs use
``schedule``; without a schedule the view is polled. Checkpoints, runs and
rejected rows live in the engine's database (:mod:`adapters.etl.schema`), so a
job killed at any point resumes where it stopped, and ``esb etl`` reports,
retries and runs jobs from the command line. The view is only ever read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.etl.consumer import EtlConsumer
from adapters.etl.job import EtlJob, RunReport
from adapters.etl.options import EtlOptions, problems, query_values
from esb.components import Adapter, Consumer, Endpoint, Handler
from esb.uri import EndpointUri, build_options

__all__ = ["EtlAdapter", "EtlConsumer", "EtlJob", "EtlOptions", "RunReport"]


class EtlAdapter(Adapter):
    scheme = "etl"
    Options: ClassVar[type[Any]] = EtlOptions
    summary = "Extract a hospital view by watermark, in batches with checkpoints, on a schedule or polling."
    uri_form = "etl:VIEW?url=DB_URL&watermark=COLUMN&key=COLUMN&option=value&..."

    def endpoint(self, uri: EndpointUri) -> Endpoint:
        # the query is re-read from the raw URI so the database URL keeps its '+' and its own '&'
        values: dict[str, Any] = {"view": ((uri.host or "") + uri.path).strip("/")}
        values.update(query_values(uri.raw))
        return Endpoint(uri, build_options(EtlOptions, values, where=self.scheme))

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        options: EtlOptions = endpoint.options
        if not consumer:
            return [f"etl:{options.view}: an ETL job only reads a view; it cannot be used in 'to:' (see table:)"]
        given = {key.replace("-", "_") for key in query_values(endpoint.uri.raw)}
        return problems(options, given)

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        journal = self.context.journal
        if journal is None:
            raise RuntimeError("etl: needs the engine's database for its checkpoints")
        return EtlConsumer(endpoint.options, handler, route_id, journal, owner=self.context.settings.node_id)
