"""ebXML RegRep 3.0 and XDS.b vocabulary (ITI TF-3 4.2) and the RegistryResponse builder.

One place for the UUIDs so that the registry, the repository, the queries and
the tests cannot disagree on a classification scheme.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lxml import etree

from esb.errors import XdsError

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
NSMAP = {"rim": RIM, "rs": RS, "lcm": LCM, "query": QUERY, "xds": XDS, "xop": XOP}

# -- SOAP actions (WS-Addressing) ---------------------------------------------------
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI42 = "urn:ihe:iti:2007:RegisterDocumentSet-b"
ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"


def response_action(action: str) -> str:
    """The response Action of an IHE request Action (``...Response`` suffix)."""
    return f"{action}Response"


# -- object types and statuses --------------------------------------------------------
STABLE_DOCUMENT = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
ON_DEMAND_DOCUMENT = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
DOCUMENT_TYPES = (STABLE_DOCUMENT, ON_DEMAND_DOCUMENT)
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
FOLDER_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
ASSOCIATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"

APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
SUBMITTED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"

SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

# -- associations ---------------------------------------------------------------------
HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
APND = "urn:ihe:iti:2007:AssociationType:APND"
XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
IS_SNAPSHOT_OF = "urn:ihe:iti:2010:AssociationType:IsSnapshotOf"
RELATIONSHIPS = (RPLC, APND, XFRM, XFRM_RPLC, SIGNS, IS_SNAPSHOT_OF)
#: associations whose target the submission deprecates
REPLACING = (RPLC, XFRM_RPLC)

# -- DocumentEntry classification schemes and identifiers ----------------------------------
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_LIMITED_METADATA = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

# -- SubmissionSet ----------------------------------------------------------------------
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

# -- Folder -------------------------------------------------------------------------------
FOLDER_CODE_LIST = "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"
FOLDER_PATIENT_ID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
FOLDER_UNIQUE_ID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"

# -- stored queries (ITI TF-2a 3.18.4.1.2.3.7) ------------------------------------------
STORED_QUERIES = {
    "FindDocuments": "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
    "FindDocumentsByReferenceId": "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492",
    "FindSubmissionSets": "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9",
    "FindFolders": "urn:uuid:958f3006-baad-4929-a4de-ff1114824431",
    "GetAll": "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3",
    "GetDocuments": "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",
    "GetFolders": "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4",
    "GetAssociations": "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155",
    "GetDocumentsAndAssociations": "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a",
    "GetSubmissionSets": "urn:uuid:51224314-5390-4169-9b91-b1980040715a",
    "GetSubmissionSetAndContents": "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83",
    "GetFolderAndContents": "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7",
    "GetFoldersForDocument": "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578",
    "GetRelatedDocuments": "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6",
}
STORED_QUERY_NAMES = {uuid: name for name, uuid in STORED_QUERIES.items()}


def q(prefix: str, local: str) -> str:
    """Clark notation for a prefixed name: ``q("rim", "Slot")``."""
    return f"{{{NSMAP[prefix]}}}{local}"


def registry_error_list(errors: Iterable[XdsError]) -> Any:
    """``rs:RegistryErrorList`` with one RegistryError per error (highest severity first)."""
    items = list(errors)
    node = etree.Element(q("rs", "RegistryErrorList"), nsmap={"rs": RS})
    worst = SEVERITY_ERROR if any(e.severity == "Error" for e in items) else SEVERITY_WARNING
    node.set("highestSeverity", worst)
    for error in items:
        item = etree.SubElement(node, q("rs", "RegistryError"))
        item.set("errorCode", error.code)
        item.set("codeContext", error.text)
        item.set("severity", SEVERITY_ERROR if error.severity == "Error" else SEVERITY_WARNING)
        if error.location:
            item.set("location", error.location)
    return node


def response_status(errors: Iterable[XdsError], *, partial: bool = False) -> str:
    """Success without errors (warnings allowed), Failure, or PartialSuccess when asked and some worked."""
    if not any(e.severity == "Error" for e in errors):
        return SUCCESS
    return PARTIAL_SUCCESS if partial else FAILURE


def registry_response(errors: Iterable[XdsError] = (), *, partial: bool = False) -> Any:
    """``rs:RegistryResponse`` (ITI-41/42 answer): status and, if any, the error list."""
    items = [e for error in errors for e in error.all()]
    node = etree.Element(q("rs", "RegistryResponse"), nsmap={"rs": RS})
    node.set("status", response_status(items, partial=partial))
    if items:
        node.append(registry_error_list(items))
    return node
