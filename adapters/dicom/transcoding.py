"""Transcoding on retrieval for C-MOVE and C-GET: an instance goes out in a syntax the peer accepted.

An instance is sent as stored when the association has a context for its
transfer syntax; otherwise it is re-encoded (``profiles.dicom.transcode``: the
stored syntax, else the peer's lossless ones, else lossy if policy allows) into
one the peer accepted. For C-GET the contexts are the requestor's association;
for C-MOVE, pynetdicom opens the sub-association to the destination itself and
does not hand it to the handler, so :class:`RecordingAE` notes the association
it opens in this thread, and the handler, running in the same thread, reads it.
"""

from __future__ import annotations

import io
import logging
import threading
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from esb.errors import DicomError
from profiles.dicom.transcode import TranscodePolicy, encode, negotiate, pixel_info

log = logging.getLogger("esb.adapters.dicom")

_opened = threading.local()


class RecordingAE(AE):
    """An AE that remembers, per thread, the last association it requested (the C-MOVE sub-association)."""

    def associate(self, *args: Any, **kwargs: Any) -> Any:
        assoc = super().associate(*args, **kwargs)
        _opened.association = assoc
        return assoc


def move_association() -> Any:
    """The association this thread's C-MOVE handler is sending over (None before pynetdicom opened it)."""
    return getattr(_opened, "association", None)


def accepted_syntaxes(assoc: Any, sop_class: str) -> list[str]:
    """Transfer syntaxes the association accepted for ``sop_class``, in context order."""
    if assoc is None:
        return []
    return [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if str(cx.abstract_syntax) == sop_class and cx.transfer_syntax
    ]


def fit(ds: Dataset, accepted: list[str], policy: TranscodePolicy | None = None) -> Dataset:
    """``ds`` as it is when its syntax was accepted (or nothing is known), else re-encoded into an accepted one."""
    current = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if not accepted or current in accepted:
        return ds
    policy = policy or TranscodePolicy()
    target = negotiate(current, accepted, pixel_info(ds), allow_lossy=policy.allow_lossy)
    if target is None:
        return ds  # the sub-operation fails alone, as before
    try:
        return dcmread(io.BytesIO(encode(ds, target, policy)))
    except DicomError as exc:
        log.info("instance %s cannot be sent as %s: %s", ds.get("SOPInstanceUID", "?"), target, exc.text)
        return ds
