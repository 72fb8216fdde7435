"""The XDS-I.b manifest: one Key Object Selection Document per study (PS3.3 A.35.4, TID 2010, RAD TF-3 4.68).

The KOS carries the Patient and General Study modules of the study it lists,
a KO Document Series of its own, and the document title (113030, DCM,
"Manifest"). Every instance of the study appears twice, as RAD-68 wants:
once in the Current Requested Procedure Evidence Sequence (study -> series
-> SOP references), where each series names where to get it — Retrieve AE
Title (DIMSE), Retrieve Location UID (the Imaging Document Source's
repositoryUniqueId, for RAD-69) and Retrieve URL (the series' WADO-RS URL) —
and once as an IMAGE / COMPOSITE / WAVEFORM content item of the TID 2010
tree, since the template requires each selected object in the content.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from profiles.dicom.api import InstanceRef
from profiles.xdsi.config import KOS_SOP_CLASS, XdsiConfig

MANIFEST_TITLE = ("113030", "DCM", "Manifest")
#: the KO series number: Type 1, any value; a high one keeps it after the acquired series in viewers
KO_SERIES_NUMBER = 9999
#: attributes copied from the study's index entry (Patient and General Study modules, with their types)
PATIENT_STUDY_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
PATIENT_STUDY_OPTIONAL = (
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "StudyDescription",
    "IssuerOfAccessionNumberSequence",
)


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def value_type(sop_class_uid: str) -> str:
    """TID 2010 content item type: IMAGE for image storage classes, WAVEFORM for waveforms, else COMPOSITE."""
    name = UID(sop_class_uid).name
    if "Waveform" in name:
        return "WAVEFORM"
    if "Image Storage" in name:
        return "IMAGE"
    return "COMPOSITE"


def series_url(wado_base: str, study_uid: str, series_uid: str) -> str:
    return f"{wado_base.rstrip('/')}/studies/{study_uid}/series/{series_uid}"


def by_series(instances: Sequence[InstanceRef]) -> dict[str, list[InstanceRef]]:
    """Instances grouped by series, in the order the archive listed them."""
    grouped: dict[str, list[InstanceRef]] = {}
    for instance in instances:
        grouped.setdefault(instance.series_uid, []).append(instance)
    return grouped


def _sop_reference(instance: InstanceRef) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = instance.sop_class_uid
    item.ReferencedSOPInstanceUID = instance.sop_instance_uid
    return item


def evidence(study_uid: str, instances: Sequence[InstanceRef], config: XdsiConfig) -> DicomSequence:
    """Current Requested Procedure Evidence Sequence: the Hierarchical SOP Instance Reference Macro (C.17-3)."""
    study = Dataset()
    study.StudyInstanceUID = study_uid
    series_items = []
    for series_uid, members in by_series(instances).items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        item.RetrieveAETitle = config.ae_title
        item.RetrieveLocationUID = config.repository_unique_id
        item.RetrieveURL = series_url(config.wado_base, study_uid, series_uid)
        item.ReferencedSOPSequence = DicomSequence([_sop_reference(i) for i in members])
        series_items.append(item)
    study.ReferencedSeriesSequence = DicomSequence(series_items)
    return DicomSequence([study])


def content(instances: Sequence[InstanceRef]) -> DicomSequence:
    """TID 2010 rows: one CONTAINS item per selected object (no concept name: the template has none)."""
    items = []
    for instance in instances:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = value_type(instance.sop_class_uid)
        item.ReferencedSOPSequence = DicomSequence([_sop_reference(instance)])
        items.append(item)
    return DicomSequence(items)


def _request(study: Dataset) -> DicomSequence:
    """Referenced Request Sequence (KO Document module, 1C): the order the study fulfils, when it has one."""
    item = Dataset()
    item.StudyInstanceUID = study.StudyInstanceUID
    item.ReferencedStudySequence = DicomSequence()
    item.AccessionNumber = study.get("AccessionNumber", "")
    item.IssuerOfAccessionNumberSequence = DicomSequence(list(study.get("IssuerOfAccessionNumberSequence", [])))
    for keyword in ("PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest"):
        setattr(item, keyword, "")
    item.RequestedProcedureID = study.get("RequestedProcedureID", "")
    item.RequestedProcedureDescription = study.get("RequestedProcedureDescription", "")
    item.RequestedProcedureCodeSequence = DicomSequence()
    return DicomSequence([item])


def build(
    study: Dataset,
    instances: Sequence[InstanceRef],
    config: XdsiConfig,
    *,
    now: dt.datetime | None = None,
    sop_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> Dataset:
    """The KOS manifest of ``study`` (its index attributes) listing ``instances`` (all of the study's)."""
    if not instances:
        raise ValueError("a manifest lists at least one instance (TID 2010)")
    now = now or dt.datetime.now().astimezone()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    study_uid = str(study.StudyInstanceUID)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = KOS_SOP_CLASS
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = UID(KOS_SOP_CLASS)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient and General Study modules, as the archive indexed them
    for keyword in PATIENT_STUDY_TYPE2:
        setattr(ds, keyword, study.get(keyword, ""))
    for keyword in PATIENT_STUDY_OPTIONAL:
        if study.get(keyword):
            setattr(ds, keyword, study.get(keyword))
    ds.StudyInstanceUID = study_uid
    # Key Object Document Series and General Equipment
    ds.Modality = "KO"
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.SeriesNumber = KO_SERIES_NUMBER
    ds.SeriesDescription = "XDS-I.b manifest"
    ds.ReferencedPerformedProcedureStepSequence = DicomSequence()
    ds.Manufacturer = config.manufacturer
    # Key Object Document
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = date, time
    if ds.AccessionNumber:
        ds.ReferencedRequestSequence = _request(study)
    ds.CurrentRequestedProcedureEvidenceSequence = evidence(study_uid, instances, config)
    # SR Document Content: the TID 2010 root
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence([code(*MANIFEST_TITLE)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = DicomSequence([template])
    ds.ContentSequence = content(instances)
    if any(isinstance(v, str) and not v.isascii() for v in _texts(ds)):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def _texts(ds: Dataset) -> list[Any]:
    return [str(ds.get(k, "")) for k in (*PATIENT_STUDY_TYPE2, "IssuerOfPatientID", "StudyDescription")]


def encode(ds: Dataset) -> bytes:
    """The KOS as a DICOM Part 10 file (what RAD-68 sends as application/dicom)."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
