"""The coded values audit messages use, in one place.

DICOM PS3.16 CID 400 (Audit Event ID), CID 401/403 (event types), CID 402
(active participant roles) and CID 404 (object ID types); RFC 3881's object ID
types; IHE ITI TF-2 "IHE Transactions" event types. Names here are the codes'
meanings, so a factory reads like the table in the standard it follows.
"""

from __future__ import annotations

from esb.audit.model import Code

DCM = "DCM"
IHE = "IHE Transactions"
RFC3881 = "RFC-3881"
#: implementation-defined codes (security alert kinds, permissions)
LOCAL = "esb-imaging"


def dcm(code: str, meaning: str) -> Code:
    return Code(code, DCM, meaning)


# -- EventID (CID 400) -------------------------------------------------------------
APPLICATION_ACTIVITY = dcm("110100", "Application Activity")
AUDIT_LOG_USED = dcm("110101", "Audit Log Used")
BEGIN_TRANSFERRING = dcm("110102", "Begin Transferring DICOM Instances")
INSTANCES_ACCESSED = dcm("110103", "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = dcm("110104", "DICOM Instances Transferred")
STUDY_DELETED = dcm("110105", "DICOM Study Deleted")
EXPORT = dcm("110106", "Export")
IMPORT = dcm("110107", "Import")
NETWORK_ENTRY = dcm("110108", "Network Entry")
ORDER_RECORD = dcm("110109", "Order Record")
PATIENT_RECORD = dcm("110110", "Patient Record")
PROCEDURE_RECORD = dcm("110111", "Procedure Record")
QUERY = dcm("110112", "Query")
SECURITY_ALERT = dcm("110113", "Security Alert")
USER_AUTHENTICATION = dcm("110114", "User Authentication")

EVENT_IDS = (
    APPLICATION_ACTIVITY, AUDIT_LOG_USED, BEGIN_TRANSFERRING, INSTANCES_ACCESSED, INSTANCES_TRANSFERRED,
    STUDY_DELETED, EXPORT, IMPORT, NETWORK_ENTRY, ORDER_RECORD, PATIENT_RECORD, PROCEDURE_RECORD, QUERY,
    SECURITY_ALERT, USER_AUTHENTICATION,
)  # fmt: skip
#: the spellings ``esb audit search --event`` takes: ``patient-record`` -> 110110
EVENT_NAMES = {code.meaning.lower().replace(" ", "-"): code.code for code in EVENT_IDS}

# -- EventTypeCode (CID 401, 403) ------------------------------------------------------
APPLICATION_START = dcm("110120", "Application Start")
APPLICATION_STOP = dcm("110121", "Application Stop")
LOGIN = dcm("110122", "Login")
LOGOUT = dcm("110123", "Logout")
NODE_AUTHENTICATION = dcm("110126", "Node Authentication")
EMERGENCY_OVERRIDE_STARTED = dcm("110127", "Emergency Override Started")
NETWORK_CONFIGURATION = dcm("110128", "Network Configuration")
SECURITY_CONFIGURATION = dcm("110129", "Security Configuration")
HARDWARE_CONFIGURATION = dcm("110130", "Hardware Configuration")
SOFTWARE_CONFIGURATION = dcm("110131", "Software Configuration")
USE_OF_RESTRICTED_FUNCTION = dcm("110132", "Use of Restricted Function")
AUDIT_RECORDING_STOPPED = dcm("110133", "Audit Recording Stopped")
AUDIT_RECORDING_STARTED = dcm("110134", "Audit Recording Started")
OBJECT_SECURITY_ATTRIBUTES_CHANGED = dcm("110135", "Object Security Attributes Changed")
SECURITY_ROLES_CHANGED = dcm("110136", "Security Roles Changed")
USER_SECURITY_ATTRIBUTES_CHANGED = dcm("110137", "User Security Attributes Changed")
AUTHENTICATION_DECISION = dcm("110143", "Authentication Decision")
AUTHORIZATION_DECISION = dcm("110144", "Authorization Decision")

# -- RoleIDCode (CID 402) --------------------------------------------------------------
APPLICATION = dcm("110150", "Application")
APPLICATION_LAUNCHER = dcm("110151", "Application Launcher")
DESTINATION = dcm("110152", "Destination Role ID")
SOURCE = dcm("110153", "Source Role ID")

# -- ParticipantObjectIDTypeCode (RFC 3881, CID 404) --------------------------------------
PATIENT_NUMBER = Code("2", RFC3881, "Patient Number")
REPORT_NUMBER = Code("9", RFC3881, "Report Number")
SEARCH_CRITERIA = Code("10", RFC3881, "Search Criteria")
USER_IDENTIFIER = Code("11", RFC3881, "User Identifier")
URI = Code("12", RFC3881, "URI")
STUDY_INSTANCE_UID = dcm("110180", "Study Instance UID")
SOP_CLASS_UID = dcm("110181", "SOP Class UID")
NODE_ID = dcm("110182", "Node ID")
SUBMISSION_SET = Code("urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd", "IHE XDS Metadata",
                      "submission set classificationNode")  # fmt: skip

# -- IHE transactions (ITI TF-2 x.y.6 "Security Considerations", RAD TF-3) -------------
TRANSACTIONS = {
    "ITI-8": "Patient Identity Feed",
    "ITI-9": "PIX Query",
    "ITI-18": "Registry Stored Query",
    "ITI-21": "Patient Demographics Query",
    "ITI-41": "Provide and Register Document Set-b",
    "ITI-42": "Register Document Set-b",
    "ITI-43": "Retrieve Document Set",
    "ITI-44": "Patient Identity Feed",
    "RAD-69": "Retrieve Imaging Document Set",
}


def transaction(name: str) -> Code:
    """``ITI-8`` -> EV("ITI-8", "IHE Transactions", "Patient Identity Feed")."""
    return Code(name, IHE, TRANSACTIONS.get(name, name))


def local(code: str, meaning: str | None = None) -> Code:
    return Code(code, LOCAL, meaning or code)


#: Security Alert kinds the platform raises -> the DICOM event type that fits them
ALERT_KINDS = {
    "node-authentication": NODE_AUTHENTICATION,
    "ws-security": NODE_AUTHENTICATION,
    "network-configuration": NETWORK_CONFIGURATION,
    "security-configuration": SECURITY_CONFIGURATION,
    "software-configuration": SOFTWARE_CONFIGURATION,
    "restricted-function": USE_OF_RESTRICTED_FUNCTION,
    "audit-stopped": AUDIT_RECORDING_STOPPED,
    "audit-started": AUDIT_RECORDING_STARTED,
    "object-security": OBJECT_SECURITY_ATTRIBUTES_CHANGED,
    "security-roles": SECURITY_ROLES_CHANGED,
    "user-security": USER_SECURITY_ATTRIBUTES_CHANGED,
}

#: well-known SOP classes of the Query/Retrieve information models (DICOM Query participant objects)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
