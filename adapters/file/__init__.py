"""``file:``: a directory as an endpoint (Camel's file component, Mirth's file reader/writer).

``from: file:///data/in?pattern=*.hl7`` reads files, ``to: file:///data/out``
writes them. Several engine nodes may poll one shared directory: each file is
claimed by an atomic rename, so it is processed by one node, and moved away
only once the engine holds it (see :mod:`adapters.file.consumer`). Writes are
atomic (see :mod:`adapters.file.producer`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.file.consumer import FileConsumer
from adapters.file.options import FileOptions, problems, resolve
from adapters.file.producer import FileProducer
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.uri import EndpointUri, UriError

__all__ = ["FileAdapter", "FileConsumer", "FileOptions", "FileProducer"]


class FileAdapter(Adapter):
    scheme = "file"
    Options: ClassVar[type[Any]] = FileOptions
    summary = "Read files from a directory (shared by several nodes) or write them atomically."

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        if uri.host:
            raise UriError(
                f"'{uri.raw}': file URIs take no host ('{uri.host}'); write file:///absolute/dir or file:relative/dir"
            )
        return {"directory": uri.path}

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...]:
        return ("file", str(resolve(endpoint.options.directory)))

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        given = {key.replace("-", "_") for key in endpoint.uri.params}
        return problems(endpoint.options, given, consumer=consumer)

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        return FileConsumer(endpoint.options, handler, route_id, self.context.settings.node_id)

    def producer(self, endpoint: Endpoint) -> Producer:
        return FileProducer(endpoint.options)
