"""Sending storage commitment reports: N-EVENT-REPORT on an association the archive opens to the requester.

The archive is the association requestor here but the Storage Commitment
SCP: it proposes the Push Model SOP Class with SCP/SCU role selection, itself
in the SCP role (PS3.4 J.3.3, PS3.7 D.3.3.4), as dcm4chee and Orthanc do.
A report the requester does not take (association refused, a failure status,
no answer) is tried again later with a backoff (:meth:`Commitments.retry`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role

from esb.errors import DicomError
from profiles.dicom.commitment import PUSH_MODEL, PUSH_MODEL_INSTANCE, Commitments, Due, event_report, verdict
from profiles.dicom.config import RemoteAe
from profiles.dicom.qrscu import associated

log = logging.getLogger("esb.dicom.commitment")

#: seconds for each of association, response and network waits of one report (CLAIM_LIMIT of them fit the lease)
TIMEOUT = 10.0


@dataclass(frozen=True)
class Reported:
    """What became of one due request: ``sent`` with its counts, or the new status after a failed attempt."""

    id: str
    status: str
    committed: int = 0
    failed: int = 0
    error: str = ""


def send_report(
    remote: RemoteAe, local_ae: str, event_type: int, information: Dataset, *, timeout: float = TIMEOUT
) -> None:
    """One N-EVENT-REPORT on a fresh association; :class:`DicomError` when the requester did not take it."""
    ae = AE(ae_title=local_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(PUSH_MODEL)
    with associated(ae, remote, roles=[build_role(PUSH_MODEL, scp_role=True)]) as assoc:
        answer, _ = assoc.send_n_event_report(information, event_type, PUSH_MODEL, PUSH_MODEL_INSTANCE)
    status = int(answer.get("Status", -1)) if answer else -1
    if status != 0x0000:
        what = "no answer" if status < 0 else f"status 0x{status:04X}"
        where = f"{remote.ae_title} at {remote.host}:{remote.port}"
        raise DicomError(f"{where} answered the N-EVENT-REPORT with {what}", status=0xA801)


def report_due(
    commitments: Commitments,
    remotes: dict[str, RemoteAe],
    local_ae: str,
    *,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    send: Callable[[RemoteAe, str, int, Dataset], None] = send_report,
) -> list[Reported]:
    """Send the report of every request that is due (this node's claim); each settles on its own."""
    done: list[Reported] = []
    for due in commitments.claim(now()):
        done.append(_report(commitments, due, remotes, local_ae, now, send))
    return done


def _report(
    commitments: Commitments,
    due: Due,
    remotes: dict[str, RemoteAe],
    local_ae: str,
    now: Callable[[], dt.datetime],
    send: Callable[[RemoteAe, str, int, Dataset], None],
) -> Reported:
    remote = remotes.get(due.remote)
    try:
        if remote is None:
            raise DicomError(f"remote AE '{due.remote}' is no longer in config/dicom.yaml remote_aes")
        committed, failed = verdict(commitments.engine, due.references)
        event_type, information = event_report(due.transaction_uid, committed, failed, local_ae)
        send(remote, local_ae, event_type, information)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        status = commitments.retry(due, error, now())
        log.warning("storage commitment %s: report to %s not taken (%s); %s", due.id, due.remote,
                    type(exc).__name__, "retried later" if status == "pending" else "given up")  # fmt: skip
        return Reported(due.id, status, error=error)
    commitments.sent(due, len(committed), len(failed), now())
    log.info("storage commitment %s: reported to %s (%d committed, %d failed)", due.id, due.remote,
             len(committed), len(failed))  # fmt: skip
    return Reported(due.id, "sent", len(committed), len(failed))
