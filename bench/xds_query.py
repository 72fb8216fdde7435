"""ITI-18 FindDocuments latency over a large registry (issue 4 target: p95 <= 20 ms on PostgreSQL).

``n`` DocumentEntries over ``n / 10`` patients (the issue's 1,000,000 over
100,000) are written straight into the registry tables in batches, with the
columns, codes and author rows the ITI-42 ingest writes and a compact ebRIM
element: registering a million entries through ITI-42 would measure the ingest,
not the query. Then FindDocuments runs through :class:`StoredQueries` (the code
the SOAP endpoint calls) for random patients: by patient and status (LeafClass),
and with a classCode and a creation-time range added. Figures: load time, and
p50/p95 per query shape.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from bench.runner import Figure, Run, percentiles, rate, register
from profiles.xds import ebxml

MASTER_OID = "1.2.156.112.9999.1.1"
BATCH = 5_000
QUERIES = 400
CLASS_CODES = ("11369-6", "18748-4", "34133-9", "11488-4", "57133-1")
TYPE_CODES = ("18782-3", "24627-2", "30954-2")


def patient(i: int) -> str:
    return f"P{i:08d}^^^&{MASTER_OID}&ISO"


def _xml(entry_id: str, unique_id: str, patient_id: str, created: str) -> bytes:
    """A compact DocumentEntry element: what LeafClass answers carry (size matters for the fetch)."""
    return (
        f'<rim:ExtrinsicObject xmlns:rim="{ebxml.RIM}" id="{entry_id}" lid="{entry_id}" '
        f'objectType="{ebxml.STABLE_DOCUMENT}" mimeType="application/dicom" status="{ebxml.APPROVED}">'
        f'<rim:Slot name="creationTime"><rim:ValueList><rim:Value>{created}</rim:Value></rim:ValueList></rim:Slot>'
        f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" registryObject="{entry_id}" '
        f'identificationScheme="{ebxml.DE_PATIENT_ID}" value="{escape(patient_id)}"/>'
        f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" registryObject="{entry_id}" '
        f'identificationScheme="{ebxml.DE_UNIQUE_ID}" value="{unique_id}"/>'
        "</rim:ExtrinsicObject>"
    ).encode()


def load(engine: Any, n: int, seed: int = 1) -> float:
    """Write ``n`` entries over ``max(1, n // 10)`` patients; returns the seconds it took."""
    from profiles.xds.registry import schema as t

    rng = random.Random(seed)
    patients = max(1, n // 10)
    now = dt.datetime(2026, 11, 29)
    started = time.perf_counter()
    for first in range(0, n, BATCH):
        objects, codes, values = [], [], []
        for i in range(first, min(n, first + BATCH)):
            entry_id = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
            pid = patient(i % patients)
            created = f"20{rng.randint(10, 26):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}000000"
            unique_id = f"1.2.156.112.9999.4.{i}"
            objects.append({
                "id": entry_id, "kind": t.DOCUMENT, "lid": entry_id, "status": ebxml.APPROVED,
                "object_type": ebxml.STABLE_DOCUMENT, "unique_id": unique_id, "patient_id": pid,
                "home_community_id": None, "registered_at": now, "submission": None,
                "mime_type": "application/dicom", "hash": "0" * 40, "size": 1000,
                "repository_unique_id": "1.2.156.112.9999.3.1", "creation_time": created,
                "service_start_time": created, "service_stop_time": None, "submission_time": None,
                "source_id": None, "last_update_time": None, "association_type": None,
                "source_object": None, "target_object": None, "xml": _xml(entry_id, unique_id, pid, created),
            })  # fmt: skip
            codes.append(
                {"object_id": entry_id, "scheme": ebxml.DE_CLASS_CODE, "code": rng.choice(CLASS_CODES),
                 "coding_scheme": "2.16.840.1.113883.6.1"}
            )  # fmt: skip
            codes.append(
                {"object_id": entry_id, "scheme": ebxml.DE_TYPE_CODE, "code": rng.choice(TYPE_CODES),
                 "coding_scheme": "2.16.840.1.113883.6.1"}
            )  # fmt: skip
            values.append({"object_id": entry_id, "name": "author_person", "value": f"^Doctor{i % 500}^^^^^^^&1.2&ISO"})
        with engine.begin() as conn:
            conn.execute(t.objects.insert(), objects)
            conn.execute(t.codes.insert(), codes)
            conn.execute(t.values.insert(), values)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def find_documents(patient_id: str, *, class_code: str | None = None, created_from: str | None = None) -> Any:
    """A FindDocuments AdhocQueryRequest (LeafClass) as a Document Consumer sends it."""
    request = etree.Element(ebxml.q("query", "AdhocQueryRequest"), nsmap={"query": ebxml.QUERY, "rim": ebxml.RIM})
    etree.SubElement(request, ebxml.q("query", "ResponseOption"), returnType="LeafClass", returnComposedObjects="true")
    query = etree.SubElement(request, ebxml.q("rim", "AdhocQuery"), id=ebxml.STORED_QUERIES["FindDocuments"])
    slots = [
        ("$XDSDocumentEntryPatientId", f"'{patient_id}'"),
        ("$XDSDocumentEntryStatus", f"('{ebxml.APPROVED}')"),
    ]
    if class_code:
        slots.append(("$XDSDocumentEntryClassCode", f"('{class_code}^^2.16.840.1.113883.6.1')"))
    if created_from:
        slots.append(("$XDSDocumentEntryCreationTimeFrom", created_from))
    for name, value in slots:
        slot = etree.SubElement(query, ebxml.q("rim", "Slot"), name=name)
        etree.SubElement(etree.SubElement(slot, ebxml.q("rim", "ValueList")), ebxml.q("rim", "Value")).text = value
    return request


def _time(queries: Any, requests: list[Any]) -> tuple[list[float], int]:
    samples, found = [], 0
    for request in requests:
        started = time.perf_counter()
        answer = queries.run(request)
        samples.append(time.perf_counter() - started)
        if answer.get("status") != ebxml.SUCCESS:
            raise RuntimeError(f"FindDocuments failed: {etree.tostring(answer)[:300]!r}")
        found += len(answer.findall(f".//{ebxml.q('rim', 'ExtrinsicObject')}"))
    return samples, found


@register("xds-find-documents", n=1_000_000, quick_n=2_000, summary="ITI-18 FindDocuments over n DocumentEntries")
def find_documents_bench(run: Run) -> Iterator[Figure]:
    from esb.journal import database
    from profiles.xds.config import XdsConfig
    from profiles.xds.registry.query import StoredQueries

    engine = database.make_engine(run.db.url)
    try:
        database.upgrade(engine)
        seconds = load(engine, run.n)
        yield Figure("load_seconds", round(seconds, 1), "s")
        yield Figure("load_rate", rate(run.n, seconds), "entries/s")
        queries = StoredQueries(engine, XdsConfig(), MASTER_OID)
        rng = random.Random(2)
        patients = max(1, run.n // 10)
        count = 50 if run.quick else QUERIES
        _time(queries, [find_documents(patient(rng.randrange(patients))) for _ in range(20)])  # warm up
        plain, found = _time(queries, [find_documents(patient(rng.randrange(patients))) for _ in range(count)])
        yield from percentiles(plain, "by_patient_latency")
        yield Figure("by_patient_entries", round(found / count, 1), "entries/query")
        coded = [
            find_documents(patient(rng.randrange(patients)), class_code=rng.choice(CLASS_CODES), created_from="2015")
            for _ in range(count)
        ]
        samples, _ = _time(queries, coded)
        yield from percentiles(samples, "coded_latency")
    finally:
        engine.dispose()
