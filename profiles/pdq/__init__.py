"""PDQ Supplier face of the EMPI over HL7 v2: Patient Demographics Query (ITI-21) with continuation and cancel.

Pure functions: QBP^Q22/QCN^J01 in, query objects out; hits in, RSP^K22/ACK^J01 out.
"""

from profiles.pdq.hl7 import (
    PDQ_FIELDS,
    PdqCancel,
    PdqQuery,
    ack_j01,
    domain_errors,
    error_response,
    is_wildcard,
    like,
    matcher,
    parse_qbp_q22,
    parse_qcn_j01,
    rsp_k22,
)

__all__ = [
    "PDQ_FIELDS",
    "PdqCancel",
    "PdqQuery",
    "ack_j01",
    "domain_errors",
    "error_response",
    "is_wildcard",
    "like",
    "matcher",
    "parse_qbp_q22",
    "parse_qcn_j01",
    "rsp_k22",
]
