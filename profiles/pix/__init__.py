"""PIX Manager faces of the EMPI over HL7 v2: PIX Query (ITI-9) and PIX Update Notification (ITI-10).

The Patient Identity Feed (ITI-8) is read by :mod:`transforms.hl7v2.adt`.
Everything here is pure: messages in, query objects out; results in, messages out.
"""

from profiles.pix.hl7 import PixQuery, domain_errors, error_response, parse_qbp_q23, rsp_k23, unknown_patient_error
from profiles.pix.iti10 import adt_a31

__all__ = [
    "PixQuery",
    "adt_a31",
    "domain_errors",
    "error_response",
    "parse_qbp_q23",
    "rsp_k23",
    "unknown_patient_error",
]
