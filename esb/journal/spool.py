"""Spooled attachments (MTOM parts and the like) live as long as the message that lists them.

An adapter streams large parts to files under ``<data_dir>/spool`` and lists them
in the message's ``esb-attachments`` header, so a resumed or replayed message
finds them again. When the journal lets the message body go (``store: metadata``
on completion, or pruning), the files go too. Only files under the spool root
are ever deleted, whatever a header says.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from esb.exchange import ATTACHMENTS_HEADER, attachments_from_headers

log = logging.getLogger("esb.journal")


def lists_attachments(headers: Mapping[str, str] | None) -> bool:
    return bool(headers) and ATTACHMENTS_HEADER in (headers or {})


def discard_attachments(all_headers: Iterable[Mapping[str, str]], root: Path | None) -> int:
    """Delete the spooled files these messages list (and their emptied folders); returns how many went."""
    if root is None:
        return 0
    base = root.resolve()
    removed = 0
    for headers in all_headers:
        for attachment in attachments_from_headers(dict(headers)):
            path = Path(str(attachment.path)).resolve()
            if not path.is_relative_to(base) or path == base:
                log.warning("not deleting %s: it is outside the spool folder %s", path, base)
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
            parent = path.parent
            while parent != base and parent.is_relative_to(base):
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    break
                parent = parent.parent
    return removed
