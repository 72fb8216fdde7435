"""Presentation contexts: what the SCP accepts, what the SCUs propose.

Instances are stored and sent in the transfer syntax they came in (no pixel data
is ever decoded here), so the SCP accepts every common syntax for every Storage
SOP Class, and an SCU proposes each instance's own syntax; an uncompressed one
may go as any uncompressed syntax (pydicom re-encodes the header, not pixels).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context

from profiles.dicom.commitment import PUSH_MODEL

#: Modality Worklist Information Model - FIND (PS3.4 K.6.1.1), Modality Performed Procedure Step (F.7.1)
MWL_FIND, MPPS = "1.2.840.10008.5.1.4.31", "1.2.840.10008.3.1.2.3.3"

UNCOMPRESSED: tuple[UID, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)

#: every syntax the SCP accepts for storage. pynetdicom accepts, of the syntaxes a peer
#: proposes in one context, the first in this order: uncompressed first (the usual native
#: encoding, never a reason for the sender to compress), lossless before lossy, so that
#: a sender offering both never compresses lossily because we asked for it.
STORAGE_SYNTAXES: tuple[UID, ...] = (
    *UNCOMPRESSED,
    DeflatedExplicitVRLittleEndian,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    JPEGLSNearLossless,
    JPEG2000,
    HTJ2K,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
)

#: every Storage SOP Class pynetdicom knows (PS3.4 B.5)
STORAGE_CLASSES: tuple[UID, ...] = tuple(UID(str(cx.abstract_syntax)) for cx in AllStoragePresentationContexts)

VERIFICATION = "1.2.840.10008.1.1"
#: Patient Root and Study Root Query/Retrieve Information Models (PS3.4 C.6.1, C.6.2)
FIND_MODELS: dict[str, str] = {"1.2.840.10008.5.1.4.1.2.1.1": "patient", "1.2.840.10008.5.1.4.1.2.2.1": "study"}
MOVE_MODELS: dict[str, str] = {"1.2.840.10008.5.1.4.1.2.1.2": "patient", "1.2.840.10008.5.1.4.1.2.2.2": "study"}
GET_MODELS: dict[str, str] = {"1.2.840.10008.5.1.4.1.2.1.3": "patient", "1.2.840.10008.5.1.4.1.2.2.3": "study"}

#: a peer may propose at most this many contexts in one association request (PS3.8 9.3.2.2)
MAX_REQUESTED = 128


def _context(abstract_syntax: str, syntaxes: Iterable[str], *, roles: bool = False) -> PresentationContext:
    context = build_context(abstract_syntax, list(syntaxes))
    if roles:
        # Accept what a C-GET requestor proposes in SCP/SCU role selection: it acts as the
        # Storage SCP for our C-STORE sub-operations on this very association.
        context.scu_role, context.scp_role = True, True
    return context


def scp_contexts(*, query_retrieve: bool, worklist: bool = False) -> list[PresentationContext]:
    """What our SCP accepts: verification, all storage (with C-GET roles) and, with an archive, Q/R and
    Storage Commitment Push Model."""
    contexts = [_context(VERIFICATION, UNCOMPRESSED)]
    contexts += [_context(uid, STORAGE_SYNTAXES, roles=query_retrieve) for uid in STORAGE_CLASSES]
    if query_retrieve:
        for models in (FIND_MODELS, MOVE_MODELS, GET_MODELS):
            contexts += [_context(uid, UNCOMPRESSED) for uid in models]
        # a requester may propose both roles, to take the report on this association if it stays open
        contexts.append(_context(PUSH_MODEL, UNCOMPRESSED, roles=True))
    if worklist:
        contexts += [_context(MWL_FIND, UNCOMPRESSED), _context(MPPS, UNCOMPRESSED)]
    return contexts


def store_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts to propose for sending instances of these (SOP class, transfer syntax) pairs.

    Each SOP class gets one context offering the uncompressed syntaxes, and a
    compressed instance one more with its own syntax only; an instance the peer
    takes in no offered syntax as stored is transcoded on the way out.
    More than :data:`MAX_REQUESTED` are cut: the instances left out fail alone.
    """
    contexts: list[PresentationContext] = []
    seen: set[tuple[str, str]] = set()
    for sop_class, syntax in pairs:
        uncompressed = syntax in UNCOMPRESSED
        # every SOP class also gets the uncompressed context: what a peer that takes no
        # compression (or an on-demand instance not fetched yet) is transcoded into
        for key, offered in (
            ((sop_class, ""), [syntax, *(s for s in UNCOMPRESSED if s != syntax)] if uncompressed else UNCOMPRESSED),
            ((sop_class, syntax), [syntax]),
        ):
            if key in seen or (key[1] and uncompressed):
                continue
            seen.add(key)
            contexts.append(_context(sop_class, offered))
    return contexts[:MAX_REQUESTED]
