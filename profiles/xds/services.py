"""``service:xds-registry`` and ``service:xds-repository``: the XDS.b actors hosted on the bus.

- ``xds-registry/register``: ITI-42 lcm:SubmitObjectsRequest -> rs:RegistryResponse
- ``xds-registry/query``: ITI-18 query:AdhocQueryRequest -> query:AdhocQueryResponse
- ``xds-repository/provide``: ITI-41 xds:ProvideAndRegisterDocumentSetRequest (+ MTOM parts)
  -> rs:RegistryResponse
- ``xds-repository/retrieve``: ITI-43 xds:RetrieveDocumentSetRequest -> xds:RetrieveDocumentSetResponse
  (+ the documents as attachments, sent MTOM by the soap: consumer)

Any adapter can feed them (``soap:`` for IHE peers, ``file:`` for a batch
import); the exchange body is the request payload element. Requests are
checked against the ebRS/XDS.b schemas first: a schema-invalid request is an
XDS error answer (XDSRegistryMetadataError), a payload of the wrong kind a SOAP
Fault. The repository sends its metadata to the registry on this bus, or to a
remote registry over SOAP when ``repository.registry`` names one.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any, ClassVar

from lxml import etree

from esb.authz import authorize_exchange, directory
from esb.components import Service
from esb.errors import PermissionDeniedError, SoapFaultError, XdsError
from esb.exchange import SAFE_XML_PARSER as PARSER
from esb.exchange import Exchange, attachments_header
from esb.schemas import xml_schema
from profiles.xds import audit, ebxml
from profiles.xds.config import XdsConfig, load_xds_config

#: the payload each operation takes: (root element, schema, SOAP action)
REQUESTS = {
    # the registry checks ITI-42 against the schema itself (its refusals list every problem)
    "register": (ebxml.q("lcm", "SubmitObjectsRequest"), "", ebxml.ACTION_ITI42),
    "query": (ebxml.q("query", "AdhocQueryRequest"), "ebrs-query", ebxml.ACTION_ITI18),
    "provide": (ebxml.q("xds", "ProvideAndRegisterDocumentSetRequest"), "xds.b", ebxml.ACTION_ITI41),
    "retrieve": (ebxml.q("xds", "RetrieveDocumentSetRequest"), "xds.b", ebxml.ACTION_ITI43),
}


def read_request(operation: str, exchange: Exchange) -> Any:
    """The payload element; the wrong kind of payload is a Fault, a schema-invalid one an XdsError."""
    root_tag, schema_name, _ = REQUESTS[operation]
    try:
        payload = etree.fromstring(exchange.body, PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFaultError(f"the request is not well-formed XML: {exc}") from None
    if payload.tag != root_tag:
        raise SoapFaultError(
            f"{operation} expects {etree.QName(root_tag).localname}, not {etree.QName(payload).localname}"
        )
    if not schema_name:
        return payload
    schema = xml_schema(schema_name)
    if not schema.validate(_xop_decoded(payload)):
        log: Any = schema.error_log
        entries = list(log)
        problems = [f"line {e.line}: {e.message}" for e in entries[:5]]
        # a submission's metadata is wrong (ITI-41/42), or the request itself (ITI-18, ITI-43)
        code = "XDSRegistryMetadataError" if operation in ("register", "provide") else "XDSRegistryError"
        raise XdsError("the request does not follow the schema: " + "; ".join(problems), code=code)
    return payload


def _xop_decoded(payload: Any) -> Any:
    """What the schema sees of an XOP package: an ``xop:Include`` stands for base64 content (XOP 1.0 §3),
    so a copy with each Include removed (empty base64 is valid) is validated instead."""
    includes = payload.findall(f".//{ebxml.q('xop', 'Include')}")
    if not includes:
        return payload
    checked = copy.deepcopy(payload)
    for include in list(checked.iterfind(f".//{ebxml.q('xop', 'Include')}")):
        parent = include.getparent()
        parent.remove(include)
    return checked


def query_failure(error: XdsError) -> Any:
    """An AdhocQueryResponse with status Failure and the errors (a request refused before it ran)."""
    node = etree.Element(ebxml.q("query", "AdhocQueryResponse"), nsmap={"query": ebxml.QUERY, "rim": ebxml.RIM})
    node.set("status", ebxml.FAILURE)
    node.append(ebxml.registry_error_list(error.all()))
    etree.SubElement(node, ebxml.q("rim", "RegistryObjectList"))
    return node


def reply(operation: str, payload: Any, attachments: list[Any] | None = None) -> Exchange:
    headers = {"content-type": "application/xml", "soap-reply-action": ebxml.response_action(REQUESTS[operation][2])}
    out = Exchange(body=etree.tostring(payload, encoding="utf-8"), headers=headers, attachments=attachments or [])
    if out.attachments:
        out.headers["esb-attachments"] = attachments_header(out.attachments)
    return out


class _XdsService(Service):
    """Shared plumbing: config, the engine's database, running the work in a thread."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.config: XdsConfig = load_xds_config()
        self._started = False
        self._starting = asyncio.Lock()

    @property
    def engine(self) -> Any:
        journal = self.context.journal
        if journal is None:
            raise RuntimeError(f"{type(self).__name__} needs the engine's database")
        return journal.engine

    async def start(self) -> None:
        async with self._starting:
            if not self._started:
                await asyncio.to_thread(self.open)
                self._started = True

    def open(self) -> None:
        """Build the actor (runs in a worker thread once)."""

    def denied(self, exchange: Exchange, permission: str) -> XdsError | None:
        """XDSRegistryError "access denied" when the caller may not ``permission`` (esb.authz), else None."""
        try:
            authorize_exchange(exchange, permission, directory(self.engine))
        except PermissionDeniedError as exc:
            return XdsError(f"access denied: {exc}", code="XDSRegistryError")
        return None

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__} was not started")
        handler: Callable[[Exchange], Exchange] = getattr(self, f"_{operation}")
        return await asyncio.to_thread(handler, exchange)


class XdsRegistryService(_XdsService):
    operations: ClassVar[tuple[str, ...]] = ("register", "query")

    def open(self) -> None:
        from profiles.empi.config import load_empi_config
        from profiles.xds.registry.query import StoredQueries
        from profiles.xds.registry.register import Registry

        master_oid = load_empi_config().master_domain.universal_id
        self.registry = Registry(self.engine, self.config, master_oid)
        self.queries = StoredQueries(self.engine, self.config, master_oid)

    def _register(self, exchange: Exchange) -> Exchange:
        try:
            request = read_request("register", exchange)
        except XdsError as exc:
            return reply("register", ebxml.registry_response([exc]))
        answer = self.registry.register(request)
        audit.imported("ITI-42", exchange, request, answer)
        return reply("register", answer)

    def _query(self, exchange: Exchange) -> Exchange:
        denied = self.denied(exchange, "xds.query")
        if denied is not None:
            return reply("query", query_failure(denied))
        try:
            request = read_request("query", exchange)
        except XdsError as exc:
            return reply("query", query_failure(exc))
        answer = self.queries.run(request)
        audit.queried(exchange, request, answer)
        return reply("query", answer)


class XdsRepositoryService(_XdsService):
    operations: ClassVar[tuple[str, ...]] = ("provide", "retrieve")

    async def start(self) -> None:
        #: the remote-registry call runs from a worker thread on the engine's loop
        self._loop = asyncio.get_running_loop()
        if not self.config.registry_url:
            # metadata goes to the registry on this bus, which may not serve a route of its own here
            await self.context.service("xds-registry").start()
        await super().start()

    def open(self) -> None:
        from esb.storage import LocalDiskStore
        from profiles.xds.repository import Repository

        root = self.config.storage or self.context.settings.data_dir / "documents"
        self.repository = Repository(self.engine, self.config, LocalDiskStore(root), self._registry_call())

    def _registry_call(self) -> Callable[[Any], Any]:
        """ITI-42 to the registry: in-process, or over SOAP to ``repository.registry``."""
        if not self.config.registry_url:
            registry = self.context.service("xds-registry")
            assert isinstance(registry, XdsRegistryService)
            return registry.registry.register
        url = self.config.registry_url
        return lambda request: self._remote_register(url, request)

    def _remote_register(self, url: str, request: Any) -> Any:
        from adapters.soap.client import call

        body = etree.tostring(request, encoding="utf-8")
        future = asyncio.run_coroutine_threadsafe(call(url, body, action=ebxml.ACTION_ITI42), self._loop)
        answer, _, _ = future.result()
        return etree.fromstring(answer, PARSER)

    def _provide(self, exchange: Exchange) -> Exchange:
        try:
            request = read_request("provide", exchange)
        except XdsError as exc:
            return reply("provide", ebxml.registry_response([exc]))
        answer = self.repository.provide(request, exchange.attachments)
        audit.imported("ITI-41", exchange, request, answer)
        return reply("provide", answer)

    def _retrieve(self, exchange: Exchange) -> Exchange:
        denied = self.denied(exchange, "xds.retrieve")
        if denied is not None:
            return reply("retrieve", _retrieve_failure(denied))
        try:
            request = read_request("retrieve", exchange)
        except XdsError as exc:
            return reply("retrieve", _retrieve_failure(exc))
        payload, attachments = self.repository.retrieve(request)
        audit.exported(exchange, request, payload)
        return reply("retrieve", payload, attachments)


def _retrieve_failure(error: XdsError) -> Any:
    node = etree.Element(ebxml.q("xds", "RetrieveDocumentSetResponse"), nsmap={"xds": ebxml.XDS})
    node.append(ebxml.registry_response([error]))
    return node
