"""PIX Update Notification (ITI-10, IHE ITI TF-2 3.10): ADT^A31 to subscribed PIX Consumers.

The message tells a consumer every identifier the person now has in the
domains it subscribed to: MSH, EVN, PID (PID-3 the identifiers, PID-5 the
pseudonymous ``~^^^^^^S`` so names from different domains never conflict),
PV1 with PV1-2 ``N`` (not applicable).
"""

from __future__ import annotations

from collections.abc import Sequence

from profiles.empi.model import Domain, Identifier, PatientRecord
from transforms.hl7v2.pid import pid_segment, same_domain
from transforms.hl7v2.writer import Raw, join, msh, now_ts, render

MESSAGE_TYPE = "ADT^A31^ADT_A05"


def adt_a31(
    identifiers: Sequence[Identifier],
    *,
    sending_application: str,
    sending_facility: str,
    receiving_application: str,
    receiving_facility: str,
    domains: Sequence[Domain] = (),
    version: str = "2.5",
    charset: str = "UNICODE UTF-8",
    event_time: str = "",
    control_id: str | None = None,
) -> str | None:
    """The ADT^A31 for one person, or None when none of its identifiers is in ``domains`` (nothing to tell).

    Applications and facilities are wire HD text (``EMPI^1.2.3^ISO``); ``domains``
    empty means every domain; ``event_time`` (HL7 TS) defaults to now.
    """
    ids = [i for i in dict.fromkeys(identifiers) if not domains or any(same_domain(i.domain, d) for d in domains)]
    if not ids:
        return None
    return join(
        [
            msh(
                sending_application=sending_application,
                sending_facility=sending_facility,
                receiving_application=receiving_application,
                receiving_facility=receiving_facility,
                message_type=MESSAGE_TYPE,
                version=version,
                charset=charset,
                control_id=control_id,
            ),
            render("EVN", ["", Raw(event_time or now_ts())]),
            pid_segment(PatientRecord(), identifiers=ids, pseudonymous=True),
            render("PV1", ["", "N"]),
        ]
    )
