"""ITI-18 Registry Stored Query: AdhocQueryRequest in, AdhocQueryResponse out, refusals as RegistryErrors.

``run`` never raises for what a consumer sent: an unknown query id
(XDSUnknownStoredQuery), parameters against the query's table
(XDSStoredQueryMissingParam, XDSStoredQueryParamNumber, XDSRegistryError),
too many results (XDSTooManyResults, above ``XdsConfig.max_results``), objects
of several patients from a Get query (XDSResultNotSinglePatient) all become a
Failure response; a database failure is logged and answered XDSRegistryError.
The registry is only read, in one connection per request.

LeafClass objects are always whole (Slots, Classifications,
ExternalIdentifiers inside), which is what ``returnComposedObjects="true"``
asks for and what XDS consumers need, so the attribute is not consulted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.query import finders, getters
from profiles.xds.registry.query.answer import check_single_patient, response, survivors
from profiles.xds.registry.query.base import Context, Outcome, too_many
from profiles.xds.registry.query.binding import SYNTAX, Args, bind, slots_of
from profiles.xds.registry.query.parameters import BY_UUID, QuerySpec

log = logging.getLogger(__name__)

UNKNOWN_QUERY = "XDSUnknownStoredQuery"
RETURN_TYPES = ("LeafClass", "ObjectRef")

Runner = Callable[[Context], Outcome]

#: query name -> implementation
RUNNERS: dict[str, Runner] = {
    "FindDocuments": finders.find_documents,
    "FindDocumentsByReferenceId": finders.find_documents,
    "FindSubmissionSets": finders.find_submission_sets,
    "FindFolders": finders.find_folders,
    "GetAll": finders.get_all,
    "GetDocuments": getters.get_documents,
    "GetFolders": getters.get_folders,
    "GetAssociations": getters.get_associations,
    "GetDocumentsAndAssociations": getters.get_documents_and_associations,
    "GetSubmissionSets": getters.get_submission_sets,
    "GetSubmissionSetAndContents": getters.get_submission_set_and_contents,
    "GetFolderAndContents": getters.get_folder_and_contents,
    "GetFoldersForDocument": getters.get_folders_for_document,
    "GetRelatedDocuments": getters.get_related_documents,
}


class StoredQueries:
    """The stored queries of an XDS.b Document Registry over the registry tables of ``engine``."""

    def __init__(self, engine: Engine, config: XdsConfig, master_oid: str) -> None:
        self.engine = engine
        self.config = config
        self.master_oid = master_oid

    def run(self, request: Any) -> Any:
        """``query:AdhocQueryRequest`` -> ``query:AdhocQueryResponse``."""
        leaf, name = False, "query"
        try:
            spec, leaf, adhoc_query = _read(request)
            name = spec.name
            args, problems = bind(spec, slots_of(adhoc_query))
            if any(p.severity == "Error" for p in problems):
                _refused(spec.name, problems)
                return response([], leaf=leaf, patient_of={}, errors=problems)
            rows, patient_of = self._execute(spec, args, leaf)
            log.debug("ITI-18 %s: %d object(s)", spec.name, len(rows))
            return response(rows, leaf=leaf, patient_of=patient_of, errors=problems)
        except XdsError as error:
            _refused(name, error.all())
            return response([], leaf=leaf, patient_of={}, errors=[error])
        except SQLAlchemyError as exc:
            # the exception text carries the bound values (patient IDs): only its type above DEBUG
            log.error("ITI-18: the registry database failed (%s)", type(exc).__name__)
            log.debug("ITI-18 database failure", exc_info=True)
            failure = XdsError("the registry could not read its database; try again later", code=SYNTAX)
            return response([], leaf=leaf, patient_of={}, errors=[failure])

    def _execute(self, spec: QuerySpec, args: Args, leaf: bool) -> tuple[list[Any], dict[str, str]]:
        with self.engine.connect() as conn:
            ctx = Context(conn, args, leaf, self.config.max_results, self.master_oid, self.engine.dialect.name)
            outcome = RUNNERS[spec.name](ctx)
            rows = outcome.rows
            if len(rows) > self.config.max_results:
                raise too_many(self.config.max_results)
            patient_ids = {row.patient_id for row in rows if row.patient_id}
            if outcome.patient is not None:
                # a Find: every row is the queried patient's, under its own ID or one merged into it
                return rows, {pid: outcome.patient for pid in patient_ids if pid != outcome.patient}
            merged = survivors(conn, patient_ids, self.master_oid)
            check_single_patient(rows, merged)
            return rows, merged


def _read(request: Any) -> tuple[QuerySpec, bool, Any]:
    """The stored query, whether LeafClass was asked for, and the AdhocQuery element."""
    if request.tag != ebxml.q("query", "AdhocQueryRequest"):
        raise XdsError(f"expected query:AdhocQueryRequest, got {request.tag}", code=SYNTAX)
    adhoc_query = request.find(ebxml.q("rim", "AdhocQuery"))
    if adhoc_query is None:
        raise XdsError("AdhocQueryRequest has no rim:AdhocQuery", code=SYNTAX)
    option = request.find(ebxml.q("query", "ResponseOption"))
    return_type = option.get("returnType", "RegistryObject") if option is not None else None
    if return_type not in RETURN_TYPES:
        raise XdsError(
            f"ResponseOption returnType must be LeafClass or ObjectRef (got {return_type or 'no ResponseOption'})",
            code=SYNTAX,
            location="returnType",
        )
    query_id = adhoc_query.get("id") or ""
    spec = BY_UUID.get(query_id)
    if spec is None:
        shown = repr(query_id[:80])
        raise XdsError(f"unknown stored query id {shown}: not one of the XDS.b stored queries", code=UNKNOWN_QUERY)
    return spec, return_type == "LeafClass", adhoc_query


def _refused(name: str, problems: list[XdsError]) -> None:
    codes = sorted({p.code for p in problems if p.severity == "Error"})
    log.info("ITI-18 %s refused: %s", name, ", ".join(codes))
