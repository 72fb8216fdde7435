"""The XDS.b Document Repository actor: ITI-41 in, ITI-42 on to the registry, ITI-43 out.

It works on payload elements and attachments; the SOAP layer and the service
wiring are elsewhere. The registry is reached through one callable (the
in-process ``Registry.register`` or a SOAP client), so the repository does not
care where the registry runs. Refusals are answers, never exceptions: every
problem becomes a RegistryError with its IHE code in the returned response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from lxml import etree
from sqlalchemy import Engine

from esb.errors import XdsError
from esb.exchange import Attachment
from esb.storage import BlobStore
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.ebxml import q
from profiles.xds.repository import provide, records, retrieve
from profiles.xds.repository.provide import Incoming

log = logging.getLogger(__name__)

#: ITI-42: ``lcm:SubmitObjectsRequest`` in, ``rs:RegistryResponse`` out
Register = Callable[[Any], Any]


class Repository:
    """A Document Repository with the identity of ``config.repository_unique_id``."""

    def __init__(self, engine: Engine, config: XdsConfig, store: BlobStore, register: Register) -> None:
        self.engine = engine
        self.config = config
        self.store = store
        self.register = register

    @property
    def unique_id(self) -> str:
        return self.config.repository_unique_id

    def provide(self, request: Any, attachments: Sequence[Attachment] = ()) -> Any:
        """ITI-41: ``xds:ProvideAndRegisterDocumentSetRequest`` -> ``rs:RegistryResponse``.

        Documents are stored before the registry hears of them and deleted
        again if it refuses; the registry's own answer (its errors) is returned
        unchanged in that case.
        """
        try:
            submit, incoming = provide.plan(request, attachments, self.unique_id)
        except XdsError as exc:
            return ebxml.registry_response([exc])
        try:
            provide.store(incoming, self.store)
            provide.check_and_set(incoming, self.unique_id)
            claimed = records.claim(self.engine, self.unique_id, incoming)
        except XdsError as exc:
            self._discard(incoming)
            return ebxml.registry_response([exc])
        except Exception as exc:
            self._discard(incoming)
            log.exception("XDS repository: storing a submission failed")
            return ebxml.registry_response(
                [XdsError(f"the repository failed ({type(exc).__name__})", code="XDSRepositoryError")]
            )
        except BaseException:
            self._discard(incoming)
            raise
        answer = self._register(submit)
        if answer.get("status") == ebxml.SUCCESS:
            self._confirm(incoming)
        else:
            self._release(incoming, claimed)
        log.info(
            "XDS repository %s: provide and register of %d document(s): %s",
            self.unique_id,
            len(incoming),
            str(answer.get("status", "")).rsplit(":", 1)[-1],
        )
        return answer

    def retrieve(self, request: Any) -> tuple[Any, list[Attachment]]:
        """ITI-43: ``xds:RetrieveDocumentSetRequest`` -> (``xds:RetrieveDocumentSetResponse``, attachments).

        The attachments' content ids are those of the ``xop:Include`` hrefs in
        the response. File-backed ones point into the store: read, never delete.
        """
        return retrieve.retrieve(self.engine, self.store, self.unique_id, self.config.home_community_id, request)

    # -- steps ----------------------------------------------------------------------------

    def _register(self, submit: Any) -> Any:
        """Send the metadata to the registry; any failure to get an answer becomes a Failure response."""
        try:
            answer = self.register(submit)
        except XdsError as exc:
            return ebxml.registry_response([exc])
        except Exception as exc:
            unreachable = isinstance(exc, OSError | TimeoutError)
            log.warning("XDS repository: register (ITI-42) failed: %s", type(exc).__name__)
            return ebxml.registry_response(
                [
                    XdsError(
                        f"the registry could not be reached ({type(exc).__name__})"
                        if unreachable
                        else f"the registry failed ({type(exc).__name__})",
                        code="XDSRegistryNotAvailable" if unreachable else "XDSRegistryError",
                    )
                ]
            )
        if isinstance(answer, etree._ElementTree):
            answer = answer.getroot()
        if not isinstance(answer, etree._Element) or answer.tag != q("rs", "RegistryResponse"):
            return ebxml.registry_response(
                [XdsError("the registry answered something other than a RegistryResponse", code="XDSRegistryError")]
            )
        return answer

    def _confirm(self, incoming: Sequence[Incoming]) -> None:
        try:
            spare = records.confirm(self.engine, self.unique_id, incoming)
        except Exception:
            # The rows stay pending and retrievable; sweep.settle confirms them later.
            log.exception("XDS repository: could not confirm registered documents")
            return
        self._delete(spare)

    def _release(self, incoming: Sequence[Incoming], claimed: set[str]) -> None:
        try:
            keys = records.release(self.engine, self.unique_id, incoming, claimed)
        except Exception:
            # Pending rows stay (sweep.settle removes them); blobs no row names can go now.
            log.exception("XDS repository: could not release refused documents")
            keys = [d.stored.key for d in incoming if d.unique_id not in claimed]
        self._delete(keys)

    def _discard(self, incoming: Sequence[Incoming]) -> None:
        """Delete the blobs of a submission refused before any row was written."""
        self._delete([d.blob.key for d in incoming if d.blob is not None])

    def _delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                self.store.delete(key)
            except Exception:  # an orphan for sweep_orphans, not a reason to fail the answer
                log.exception("XDS repository: could not delete blob %s", key)
