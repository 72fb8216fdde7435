"""The ``esb`` command: run the engine and administer its journal and routes.

Exit codes scripts can trust: 0 success, 1 a problem found (lint errors, a
failing route test, nothing matched), 2 bad usage or configuration.
"""

from __future__ import annotations

import click

from esb.cli import (  # noqa: F401  (registers commands)
    audit,
    certs,
    core,
    deadletter,
    dicom,
    docs,
    empi,
    empi_codes,
    empi_load,
    empi_reviews,
    etl,
    listeners,
    messages,
    routes,
    testing,
    users,
    worklist,
    xds,
)
from esb.cli.common import main_group


def main() -> None:
    main_group(prog_name="esb")


__all__ = ["main", "click"]
