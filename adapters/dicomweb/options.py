"""Options of ``dicomweb:`` endpoints.

The endpoint only listens (web viewers and modalities call it), so there is
one side and no ``side`` tags; the archive it reads is a service named by
option, so a test or a second archive can be plugged without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

MIB = 1024 * 1024


def _meta(doc: str) -> dict[str, str]:
    return {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class DicomWebOptions:
    host: str = field(default="", metadata=_meta("Address to listen on (the engine's, to share its HTTP port)."))
    port: int = field(default=80, metadata=_meta("TCP port; 0 in tests picks a free one (shared with the engine's)."))
    path: str = field(default="/dicomweb", metadata=_meta("Base path of the DICOMweb service (every path below it)."))
    archive: str = field(
        default="dicom-archive",
        metadata=_meta("Service whose archive answers QIDO-RS, WADO-RS and WADO-URI (service:NAME)."),
    )
    cors: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Origins allowed to call from a browser (comma list, e.g. https://viewer.example.org), or * for any; "
            "empty: no CORS headers."
        ),
    )
    base_url: str = field(
        default="",
        metadata=_meta(
            "Public URL of the service (behind a reverse proxy), used in RetrieveURL and BulkDataURI; "
            "default: the URL the request came to."
        ),
    )
    max_body: int = field(
        default=4096 * MIB,
        metadata=_meta("Largest STOW-RS request in bytes (parts are streamed to disk); larger ones get 413."),
    )
    bulk_threshold: int = field(
        default=1024,
        metadata=_meta("Binary attributes longer than this many bytes are BulkDataURIs in metadata, not inline."),
    )
    thumbnail_size: int = field(default=128, metadata=_meta("Largest side of a thumbnail in pixels."))
    stow_parallel: int = field(
        default=4, metadata=_meta("STOW-RS instances of one request handed to the route at the same time.")
    )

    def __post_init__(self) -> None:
        origins = tuple(o.strip().rstrip("/") for o in self.cors if o.strip())
        object.__setattr__(self, "cors", origins)
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise ValueError(f"option 'cors' wants origins like https://viewer.example.org or * (got '{origin}')")
        if "*" in origins and len(origins) > 1:
            raise ValueError("option 'cors': * allows every origin, list no others with it")
        if self.base_url and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"option 'base_url' must be an http(s) URL (got '{self.base_url}')")
        for name in ("max_body", "bulk_threshold", "thumbnail_size", "stow_parallel"):
            if getattr(self, name) <= 0:
                raise ValueError(f"option '{name}' must be a positive number (got {getattr(self, name)})")
