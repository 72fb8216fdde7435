"""``bin/esb`` runs the CLI from a checkout, as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from esb import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_bin_esb_version_runs() -> None:
    # the script's shebang finds python3 on PATH: put this interpreter's first
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(ROOT / "bin" / "esb"), "version"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{__version__}\n"
    result = subprocess.run(
        [str(ROOT / "bin" / "esb"), "--json", "version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and f'"version": "{__version__}"' in result.stdout
