"""zeep as an IHE Document Source/Consumer: clients built from the engine's ``?wsdl``, answers read back.

zeep knows no XML Schema substitution groups, and ebRIM is made of them: the
``rim:RegistryObjectList`` of a request holds ExtrinsicObjects, RegistryPackages
and Associations standing in for ``rim:Identifiable``. So a request is built by
zeep from the WSDL as usual (envelope, WS-Addressing, base64 documents sent as
MTOM parts by :class:`tests.soap_client.MtomTransport`) and the
:class:`RegistryObjects` plugin puts the ebRIM objects (built with
``tests.xds.samples``) into its empty RegistryObjectList just before it goes
out. Answers are parsed by zeep with ``strict=False``: the ebRIM objects of a
query answer stay lxml elements (``_raw_elements``), everything else
(status, RegistryErrorList, DocumentResponse with the MTOM bytes) is zeep's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests
import zeep
import zeep.transports

from profiles.xds import ebxml
from profiles.xds.ebxml import q
from tests.soap_client import MtomTransport
from tests.xds import samples
from tests.xds_e2e.harness import RunningEngine

ITI18 = "DocumentRegistry_RegistryStoredQuery"
ITI42 = "DocumentRegistry_RegisterDocumentSet-b"
ITI41 = "DocumentRepository_ProvideAndRegisterDocumentSet-b"
ITI43 = "DocumentRepository_RetrieveDocumentSet"
REPOSITORY = samples.REPOSITORY_UNIQUE_ID
#: a parameter value: one Value (str), one Slot of several Values (list), several Slots (tuple of those)
Param = str | list[str] | tuple[str | list[str], ...]


class Transport(MtomTransport):
    """MTOM (or plain SOAP with ``mtom=False``) that keeps the last HTTP response, for its status and type."""

    def __init__(self, *, mtom: bool) -> None:
        super().__init__()
        self.mtom = mtom
        self.last: requests.Response | None = None

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        if self.mtom:
            return super().post_xml(address, envelope, headers)
        return zeep.transports.Transport.post_xml(self, address, envelope, headers)  # type: ignore[no-untyped-call]

    def post(self, address: str, message: Any, headers: dict[str, str]) -> Any:
        self.last = super().post(address, message, headers)  # type: ignore[no-untyped-call]
        return self.last

    @property
    def last_status(self) -> int:
        assert self.last is not None
        return int(self.last.status_code)

    @property
    def last_content_type(self) -> str:
        assert self.last is not None
        return str(self.last.headers.get("Content-Type", ""))


class RegistryObjects(zeep.Plugin):
    """Fills the next request's (empty) ``rim:RegistryObjectList`` with ebRIM objects."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    @contextlib.contextmanager
    def staged(self, submit: Any) -> Iterator[None]:
        """The objects of ``submit`` (a SubmitObjectsRequest) go into the request sent inside the block."""
        self.pending = list(submit.find(q("rim", "RegistryObjectList")))
        try:
            yield
        finally:
            self.pending = []

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> tuple[Any, Any]:
        objects, self.pending = self.pending, []
        if objects:
            target = envelope.find(f".//{q('rim', 'RegistryObjectList')}")
            assert target is not None and len(target) == 0, "the request has no empty RegistryObjectList"
            target.extend(copy.deepcopy(o) for o in objects)
        return envelope, http_headers


def _client(wsdl: str, transport: Transport, plugin: RegistryObjects) -> zeep.Client:
    settings = zeep.Settings(strict=False)
    return zeep.Client(wsdl, transport=transport, plugins=[plugin], settings=settings)  # type: ignore[no-untyped-call]


class XdsClient:
    """A Document Source and Consumer against one engine: ITI-41/42 out, ITI-18/43 in."""

    def __init__(self, running: RunningEngine) -> None:
        self.objects = RegistryObjects()
        self.registry_transport = Transport(mtom=False)
        self.repository_transport = Transport(mtom=True)
        self.plain_transport = Transport(mtom=False)
        self.registry = _client(f"{running.registry_url}?wsdl", self.registry_transport, self.objects)
        self.repository = _client(f"{running.repository_url}?wsdl", self.repository_transport, self.objects)
        #: the repository WSDL, but requests go out as plain SOAP (inline base64): refused for ITI-41/43
        self.plain_repository = _client(f"{running.repository_url}?wsdl", self.plain_transport, self.objects)

    def register(self, submit: Any) -> Any:
        """ITI-42: ``submit`` is an ``lcm:SubmitObjectsRequest`` element; the zeep RegistryResponse."""
        with self.objects.staged(submit):
            return self.registry.service[ITI42](RegistryObjectList={"Identifiable": []})

    def provide(self, submit: Any, documents: Mapping[str, bytes], *, plain: bool = False) -> Any:
        """ITI-41 with ``documents`` ({DocumentEntry id: bytes}) as MTOM parts (inline base64 if ``plain``)."""
        client = self.plain_repository if plain else self.repository
        with self.objects.staged(submit):
            return client.service[ITI41](
                SubmitObjectsRequest={"RegistryObjectList": {"Identifiable": []}},
                Document=[{"_value_1": data, "id": doc_id} for doc_id, data in documents.items()],
            )

    def retrieve(self, *pairs: tuple[str, str], plain: bool = False) -> Any:
        """ITI-43 for (repositoryUniqueId, documentUniqueId) pairs; the zeep RetrieveDocumentSetResponse."""
        requests_ = [{"RepositoryUniqueId": repository, "DocumentUniqueId": unique} for repository, unique in pairs]
        client = self.plain_repository if plain else self.repository
        return client.service[ITI43](DocumentRequest=requests_)

    def query(self, query: str, params: Mapping[str, Param], return_type: str = "LeafClass") -> Any:
        """ITI-18 by stored query name (or a raw id); the zeep AdhocQueryResponse."""
        slots = []
        for name, value in params.items():
            for values in value if isinstance(value, tuple) else (value,):
                texts = [values] if isinstance(values, str) else list(values)
                slots.append({"name": name, "ValueList": {"_value_1": [{"Value": t} for t in texts]}})
        return self.registry.service[ITI18](
            ResponseOption={"returnType": return_type, "returnComposedObjects": True},
            AdhocQuery={"id": ebxml.STORED_QUERIES.get(query, query), "Slot": slots},
        )


# -- slot-value syntax of query parameters ----------------------------------------------------


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def listed(*texts: str) -> str:
    return "(" + ", ".join(quoted(t) for t in texts) + ")"


def coded(code: samples.Code) -> str:
    return quoted(f"{code[0]}^^{code[1]}")


APPROVED = listed(ebxml.APPROVED)
DEPRECATED = listed(ebxml.DEPRECATED)
ANY_STATUS = listed(ebxml.APPROVED, ebxml.DEPRECATED)


def find_documents(client: XdsClient, pid: str, statuses: str = APPROVED) -> Any:
    """FindDocuments for ``pid`` in ``statuses`` (a list in the slot-value syntax), asserted to succeed."""
    return ok(
        client.query("FindDocuments", {"$XDSDocumentEntryPatientId": quoted(pid), "$XDSDocumentEntryStatus": statuses})
    )


# -- reading answers --------------------------------------------------------------------------


def status(result: Any) -> str:
    """Success, Failure or PartialSuccess of a RegistryResponse, AdhocQueryResponse or retrieve response."""
    response = getattr(result, "RegistryResponse", None) or result
    return str(response.status).rsplit(":", 1)[-1]


def errors(result: Any) -> list[tuple[str, str]]:
    """(errorCode, location) of each RegistryError, in order."""
    response = getattr(result, "RegistryResponse", None) or result
    if response.RegistryErrorList is None:
        return []
    return [(e.errorCode, e.location or "") for e in response.RegistryErrorList.RegistryError]


def codes(result: Any) -> list[str]:
    return [code for code, _ in errors(result)]


def registry_objects(result: Any) -> list[Any]:
    """The objects of an AdhocQueryResponse (LeafClass elements or ObjectRefs), as lxml elements."""
    object_list = result.RegistryObjectList
    if object_list is None:
        return []
    assert not object_list.Identifiable, "zeep parsed an object it should have left raw"
    return list(getattr(object_list, "_raw_elements", None) or [])


def ids(result: Any, tag: str | None = None) -> list[str]:
    """Ids of the returned objects (only ``rim:<tag>`` ones if given), in order."""
    return [str(o.get("id")) for o in registry_objects(result) if tag is None or o.tag == q("rim", tag)]


def of_kind(result: Any, tag: str) -> list[Any]:
    return [o for o in registry_objects(result) if o.tag == q("rim", tag)]


def slot(element: Any, name: str) -> list[str] | None:
    """The values of a Slot of ``element``, None without that Slot."""
    for node in element.iterchildren(q("rim", "Slot")):
        if node.get("name") == name:
            return [v.text or "" for v in node.iter(q("rim", "Value"))]
    return None


def identifier(element: Any, scheme: str) -> str:
    """The value of ``element``'s ExternalIdentifier of ``scheme`` (patientId, uniqueId...)."""
    for node in element.iterchildren(q("rim", "ExternalIdentifier")):
        if node.get("identificationScheme") == scheme:
            return str(node.get("value"))
    raise AssertionError(f"no ExternalIdentifier {scheme} in {element.get('id')}")


def document_unique_ids(result: Any) -> list[str]:
    return sorted(identifier(e, ebxml.DE_UNIQUE_ID) for e in of_kind(result, "ExtrinsicObject"))


def associations(result: Any) -> set[tuple[str, str, str]]:
    """(type's last part, source, target) of each returned Association."""
    return {
        (str(a.get("associationType")).rsplit(":", 1)[-1], str(a.get("sourceObject")), str(a.get("targetObject")))
        for a in of_kind(result, "Association")
    }


def entry_uuids(result: Any) -> dict[str, str]:
    """{uniqueId: entryUUID} of the DocumentEntries, SubmissionSets and Folders of a LeafClass answer."""
    schemes = (ebxml.DE_UNIQUE_ID, ebxml.SS_UNIQUE_ID, ebxml.FOLDER_UNIQUE_ID)
    found: dict[str, str] = {}
    for element in registry_objects(result):
        for node in element.iterchildren(q("rim", "ExternalIdentifier")):
            if node.get("identificationScheme") in schemes:
                found[str(node.get("value"))] = str(element.get("id"))
    return found


def ok(result: Any) -> Any:
    """``result``, asserted to be a Success without any RegistryError."""
    assert (status(result), errors(result)) == ("Success", []), errors(result)
    return result


def failed(result: Any) -> list[tuple[str, str]]:
    """The (code, location) pairs of a Failure."""
    assert status(result) == "Failure", result
    return errors(result)


def unique_ids(submit: Any, tag: str = "ExtrinsicObject") -> list[str]:
    """uniqueIds of the ``rim:<tag>`` objects of a SubmitObjectsRequest, in order."""
    return [samples.unique_id_of(node) for node in submit.iter(q("rim", tag))]


def pairs(*unique: str, repository: str = REPOSITORY) -> Sequence[tuple[str, str]]:
    return [(repository, u) for u in unique]
