"""The Imaging Document Source on a started engine: store -> complete -> KOS in XDS -> ITI-18 -> RAD-69.

The services are the engine's own (dicom-archive, xds-repository,
xds-registry, built from the shipped config files); studies complete at once
(ESB_DICOM_STUDY_COMPLETE_AFTER=0s) and the archive's ``complete-studies``
operation drives publication through the hook :func:`attach` installs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from esb.exchange import Attachment, Exchange
from esb.runtime.engine import Engine
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xdsi import rad69
from profiles.xdsi.wiring import attach
from tests.xds import samples
from tests.xds.repository_support import retrieve_request
from tests.xds.test_query_support import adhoc_query, find_documents, ids_of
from tests.xdsi.support import files, link_patient, read_dicom, study


async def test_a_completed_study_is_published_found_by_master_id_and_retrieved_with_rad69(
    start_engine: Callable[..., Awaitable[Engine]], db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESB_DICOM_STUDY_COMPLETE_AFTER", "0s")
    (tmp_path / "routes").mkdir()  # no routes: the services are called directly
    engine = await start_engine(db_url=db_url)
    context = engine.context
    source = await attach(context)
    archive_service: Any = context.service("dicom-archive")
    study_uid = study(tmp_path / "study", ct=2, mr=1)
    for number, path in enumerate(files(tmp_path / "study")):
        part = Attachment(f"part{number}@test", "application/dicom", path=str(path))
        await archive_service.call("store", Exchange(body=b"{}", attachments=[part]))
    person = link_patient(engine.journal.engine)
    await archive_service.call("complete-studies", Exchange(body=b""))
    # ITI-18: the patient's master ID finds one manifest
    registry: Any = context.service("xds-registry")
    found = registry.queries.run(adhoc_query("FindDocuments", find_documents(samples.patient_cx(person))))
    [entry_uuid] = ids_of(found)
    [entry] = found.iter(q("rim", "ExtrinsicObject"))
    kos_uid = next(
        e.get("value")
        for e in entry.iter(q("rim", "ExternalIdentifier"))
        if e.get("identificationScheme") == ebxml.DE_UNIQUE_ID
    )
    # ITI-43: the KOS from the repository; its evidence says where the images are
    repository: Any = context.service("xds-repository")
    answer, [part] = repository.repository.retrieve(retrieve_request((source.config.repository_unique_id, kos_uid)))
    manifest = read_dicom(part.read())
    [evidence] = manifest.CurrentRequestedProcedureEvidenceSequence
    triples = []
    for series in evidence.ReferencedSeriesSequence:
        assert series.RetrieveLocationUID == source.config.repository_unique_id
        assert series.RetrieveAETitle == engine.settings.dicom_ae_title
        for reference in series.ReferencedSOPSequence:
            triples.append((study_uid, series.SeriesInstanceUID, reference.ReferencedSOPInstanceUID))
    assert len(triples) == 3
    # RAD-69 with the Retrieve Location UID as RepositoryUniqueId
    request = rad69.request(triples, ["1.2.840.10008.1.2.1"], repository_unique_id=series.RetrieveLocationUID)
    answer, parts = source.rad69.retrieve(request)
    assert answer.find(q("rs", "RegistryResponse")).get("status") == ebxml.SUCCESS
    assert sorted(read_dicom(p.read()).SOPInstanceUID for p in parts) == sorted(uid for _, _, uid in triples)
    info = archive_service.archive.study(study_uid)
    assert info is not None and info.status == "archived" and entry_uuid.startswith("urn:uuid:")
