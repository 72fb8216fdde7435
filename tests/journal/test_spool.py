"""Spooled attachments go with their message's body: on completion under ``store: metadata``, and on prune."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from esb.exchange import Attachment, Exchange, attachments_header
from esb.journal import Journal
from tests.journal.helpers import Clock


def spooled(root: Path, message: str, names: list[str]) -> list[Attachment]:
    folder = root / message
    folder.mkdir(parents=True)
    parts = []
    for name in names:
        (folder / name).write_bytes(b"part " + name.encode())
        parts.append(Attachment(name, "application/octet-stream", path=str(folder / name)))
    return parts


def accept(journal: Journal, parts: list[Attachment], store_mode: str) -> str:
    exchange = Exchange(body=b"<payload/>", headers={"esb-attachments": attachments_header(parts)})
    return journal.accept(exchange, route_id="r", source="soap://test", store_mode=store_mode, claim=True)


def test_metadata_mode_deletes_the_spooled_parts_on_completion(db_url: str, tmp_path: Path, clock: Clock) -> None:
    root = tmp_path / "spool"
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"not ours")
    journal = Journal(db_url, node_id="n1", clock=clock, spool_root=root)
    try:
        journal.upgrade()
        parts = spooled(root, "m1", ["a", "b"]) + [Attachment("x", "text/plain", path=str(outside))]
        kept = spooled(root, "m2", ["c"])
        first = accept(journal, parts, "metadata")
        second = accept(journal, kept, "full")
        journal.complete(first, status="processed")
        journal.complete(second, status="processed")
        assert not (root / "m1").exists()  # both files and their emptied folder
        assert outside.read_bytes() == b"not ours"  # listed, but outside the spool folder
        assert (root / "m2" / "c").read_bytes() == b"part c"  # full mode keeps the body and its parts
    finally:
        journal.close()


def test_prune_deletes_the_parts_of_pruned_messages_only(db_url: str, tmp_path: Path, clock: Clock) -> None:
    root = tmp_path / "spool"
    journal = Journal(db_url, node_id="n1", clock=clock, spool_root=root)
    try:
        journal.upgrade()
        old = accept(journal, spooled(root, "old", ["a"]), "full")
        journal.complete(old, status="processed")
        clock.advance(10 * 86400)
        young = accept(journal, spooled(root, "young", ["b"]), "full")
        journal.complete(young, status="processed")
        assert journal.prune(dt.timedelta(days=1)) == 1
        assert not (root / "old").exists()
        assert (root / "young" / "b").exists()
    finally:
        journal.close()
