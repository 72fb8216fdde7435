"""HL7 v2 orders for the worklist tests (RAD-4): ORM^O01 (2.3.1 style) and OMI^O23 (2.5.1, IPC)."""

from __future__ import annotations


def msh(kind: str, control: str, version: str = "2.5.1") -> str:
    return f"MSH|^~\\&|RIS|HOSP|ESB|REGION|20261129080000||{kind}|{control}|P|{version}|||||||UNICODE UTF-8"


def orm(
    control: str, *, order_control: str = "NW", accession: str = "ACC1", station: str = "CT1", modality: str = "CT",
    start: str = "20261130093000", name: str = "王^小东^^^^^L^I", patient_id: str = "P100", status: str = "",
    study_uid: str = "",
) -> str:  # fmt: skip
    """An ORM^O01 with one OBR: OBR-18 accession, -19 requested procedure, -20 step, -21 station AE, -24 modality."""
    fields = {1: "1", 2: f"PL{accession}", 3: f"FL{accession}", 4: "CTCHEST^CT Chest^L", 16: "1234^Li^Wei",
              18: accession, 19: f"RP{accession}", 20: f"SPS{accession}", 21: station, 24: modality,
              27: f"^^^{start}", 34: "77^Zhao^Ming"}  # fmt: skip
    obr = "|".join(["OBR", *(fields.get(n, "") for n in range(1, 35))])
    segments = [
        msh("ORM^O01", control, "2.3.1"),
        f"PID|1||{patient_id}^^^HIS1^MR||{name}||19800506|M",
        "PV1|1|O||||||5678^Zhang^San",
        f"ORC|{order_control}|PL{accession}|FL{accession}||{status}",
        obr,
    ]
    if study_uid:
        segments.append(f"ZDS|{study_uid}^ESB^Application^DICOM")
    return "\r".join(segments)


Steps = tuple[tuple[str, str, str], ...]


def omi(control: str, *, accession: str = "ACC9", steps: Steps = (("S1", "MR", "MR1"),), start: str = "20261201140000",
        name: str = "LI^LEI~李^雷^^^^^L^I", study_uid: str = "1.2.3.4.9") -> str:  # fmt: skip
    """An OMI^O23 with one IPC per (step ID, modality, station AE) and the start in TQ1-7."""
    segments = [
        msh("OMI^O23", control),
        f"PID|1||P200^^^HIS1^MR||{name}||19900101|F",
        "PV1|1|O",
        f"ORC|NW|PL{accession}|FL{accession}",
        f"TQ1|1||||||{start}",
        f"OBR|1|PL{accession}|FL{accession}|MRHEAD^MR Head^L",
    ]
    for sps_id, modality, station in steps:
        segments.append(
            f"IPC|{accession}|RP{accession}|{study_uid}|{sps_id}|{modality}||STATION-{station}|ROOM1|{station}"
        )
    return "\r".join(segments)
