"""The Imaging Document Source's identity and the affinity-domain codes of its manifests.

There is no config file of its own: the values come from the engine's
settings (AE title), ``config/dicom.yaml`` (``xdsi.wado_base``) and
``config/xds.yaml`` (home community, repository uniqueId). The Imaging
Document Source answers RAD-69 under the repository's uniqueId: the engine is
one node hosting both actors, and a consumer picks the endpoint by
transaction, so one OID names where both documents and images come from.

Codes follow the usual XDS-I.b affinity-domain choices (LOINC 18748-4
"Diagnostic imaging study", SNOMED CT Radiology / Hospital); the formatCode is
fixed by RAD TF-3 4.68.4.1.2.4 (the KOS SOP Class UID in the DICOM UID
registry scheme). A deployment with its own code sets changes them here.
"""

from __future__ import annotations

from dataclasses import dataclass

from esb.settings import Settings
from profiles.dicom.config import DicomConfig
from profiles.xds.config import XdsConfig

Code = tuple[str, str, str]

LOINC = "2.16.840.1.113883.6.1"
SNOMED = "2.16.840.1.113883.6.96"
#: DICOM Controlled Terminology (DCM) as an OID, the coding scheme of modality event codes
DCM = "1.2.840.10008.2.16.4"
#: the DICOM UID registry, coding scheme of the XDS-I.b formatCode
DICOM_UID_REGISTRY = "1.2.840.10008.2.6.1"
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"

FORMAT_CODE: Code = (KOS_SOP_CLASS, DICOM_UID_REGISTRY, "Key Object Selection Document")
CLASS_CODE: Code = ("18748-4", LOINC, "Diagnostic imaging study")
TYPE_CODE: Code = ("18748-4", LOINC, "Diagnostic imaging study")
CONTENT_TYPE_CODE: Code = ("18748-4", LOINC, "Diagnostic imaging study")
CONFIDENTIALITY_CODE: Code = ("N", "2.16.840.1.113883.5.25", "Normal")
HEALTHCARE_FACILITY_TYPE_CODE: Code = ("22232009", SNOMED, "Hospital")
PRACTICE_SETTING_CODE: Code = ("394914008", SNOMED, "Radiology")


@dataclass(frozen=True)
class XdsiConfig:
    """Who the Imaging Document Source is and how its DocumentEntries are coded."""

    #: RetrieveLocationUID in the KOS and the RepositoryUniqueId RAD-69 requests name
    repository_unique_id: str = "1.2.156.112.9999.3.1"
    #: RetrieveAETitle in the KOS: the engine's own AE (C-MOVE / C-GET)
    ae_title: str = "ESB"
    #: WADO-RS root; each referenced series gets ``<root>/studies/<uid>/series/<uid>`` as Retrieve URL
    wado_base: str = "http://127.0.0.1:8080/dicomweb"
    #: homeCommunityId put on RAD-69 answers
    home_community_id: str = "urn:oid:1.2.156.112.9999.2"
    #: XDSSubmissionSet.sourceId: the OID of this Document Source
    source_id: str = "1.2.156.112.9999.4.1"
    #: Issuer of Accession Number for referenceIdList when a study names none (an OID; "" leaves CXi.4 out)
    accession_issuer: str = ""
    manufacturer: str = "esb-imaging"
    language_code: str = "en-US"
    class_code: Code = CLASS_CODE
    type_code: Code = TYPE_CODE
    content_type_code: Code = CONTENT_TYPE_CODE
    confidentiality_code: Code = CONFIDENTIALITY_CODE
    healthcare_facility_type_code: Code = HEALTHCARE_FACILITY_TYPE_CODE
    practice_setting_code: Code = PRACTICE_SETTING_CODE


def engine_config(settings: Settings, dicom_config: DicomConfig, xds_config: XdsConfig) -> XdsiConfig:
    """The Imaging Document Source of a running engine."""
    return XdsiConfig(
        repository_unique_id=xds_config.repository_unique_id,
        ae_title=settings.dicom_ae_title,
        wado_base=dicom_config.wado_base,
        home_community_id=xds_config.home_community_id,
    )
