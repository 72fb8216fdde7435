"""ITI-42 Register Document Set-b: the Document Registry's side (ITI TF-2b 3.42.4.1.3).

A submission is all or nothing: every problem is collected (schema, per-object
rules, patient identity, uniqueness, associations) and answered in one
RegistryResponse Failure, and nothing is written unless everything passes; the
writes then happen in one transaction. No SOAP here: the registry service gives
this the SOAP Body's request element and sends back the element it returns.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from esb.errors import XdsError
from esb.schemas import xml_schema
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry import store
from profiles.xds.registry.checks import validate
from profiles.xds.registry.codesets import CodeSets, load_code_sets
from profiles.xds.registry.metadata import parse
from profiles.xds.registry.records import Writer

log = logging.getLogger(__name__)

#: at most this many schema errors are answered (the first ones say what is wrong)
MAX_SCHEMA_ERRORS = 20


class Registry:
    """The XDS.b Document Registry's write side, on the engine's database."""

    def __init__(self, engine: Engine, config: XdsConfig, master_oid: str) -> None:
        self.engine = engine
        self.config = config
        self.master_oid = master_oid
        self.code_sets: CodeSets = load_code_sets(config.code_sets)

    def register(self, request: Any) -> Any:
        """``lcm:SubmitObjectsRequest`` -> ``rs:RegistryResponse`` (Success, or Failure with every error)."""
        try:
            with self.engine.begin() as conn:
                self.register_in(conn, request)
        except XdsError as exc:
            log.info("ITI-42 refused: %s", ", ".join(sorted({e.code for e in exc.all()})))
            return ebxml.registry_response([exc])
        except SQLAlchemyError:
            log.exception("ITI-42: the registry database failed")
            error = XdsError("the registry could not store the submission", code="XDSRegistryError")
            return ebxml.registry_response([error])
        return ebxml.registry_response()

    def register_in(self, conn: Connection, request: Any) -> None:
        """Register inside the caller's transaction; raise XdsError (``more``: every other error) on refusal.

        Validation only reads; when it passes, the writes follow. A refusal
        raised during the writes (an original deprecated meanwhile by a
        concurrent submission) leaves part of them in the transaction: the
        caller rolls back on XdsError, as ``register`` does.
        """
        element = copy.deepcopy(request)
        schema = xml_schema("ebrs-lcm")
        if not schema.validate(element):
            entries = list(cast(Iterable[Any], schema.error_log))[:MAX_SCHEMA_ERRORS]
            text = "not valid ebRS 3.0: {} (line {})"
            _raise([XdsError(text.format(e.message, e.line), code="XDSRegistryMetadataError") for e in entries])
        submission = parse(element)
        ctx = validate(conn, submission, master_oid=self.master_oid, code_sets=self.code_sets)
        _raise(ctx.errors)
        Writer(ctx, self.config.home_community_id).write(conn)
        log.info(
            "ITI-42 registered %d document(s), %d folder(s), %d association(s)",
            len(submission.documents),
            len(submission.folders),
            len(submission.associations),
        )

    def deprecate(self, entry_uuid_or_unique_id: str, *, actor: str) -> None:
        """Deprecate the Approved DocumentEntries with that entryUUID or uniqueId (``esb xds deprecate``)."""
        with self.engine.begin() as conn:
            found = store.find_documents(conn, entry_uuid_or_unique_id)
            approved = [row.id for row in found if row.status == ebxml.APPROVED]
            if not approved:
                what = "is already deprecated" if found else "names no DocumentEntry"
                raise XdsError(f"{entry_uuid_or_unique_id} {what}", location=entry_uuid_or_unique_id)
            for entry in approved:
                store.set_status(conn, entry, ebxml.DEPRECATED, only_if=ebxml.APPROVED)
        log.info("DocumentEntry %s deprecated by %s", ", ".join(approved), actor)

    def counts(self) -> dict[str, int]:
        """Objects per ``<kind>.<status>`` (``document.approved``, ``folder.deprecated``...)."""
        with self.engine.connect() as conn:
            return store.counts(conn)


def _raise(errors: list[XdsError]) -> None:
    if errors:
        first, *rest = errors
        raise XdsError(first.text, code=first.code, location=first.location, severity=first.severity, more=tuple(rest))
