"""Sex for matching: M, F, O or U, whatever code the source used.

The stored record keeps the full HL7 0001 code (A ambiguous, N not applicable
are real answers); matching only needs to know whether two records can be the
same person, so A folds into O and N into U, and U never disagrees.
"""

from __future__ import annotations

from profiles.empi.standardize.codes import CodeMaps

_FOR_MATCHING = {"M": "M", "F": "F", "O": "O", "A": "O", "U": "U", "N": "U"}


def standard(raw: str, system: str, codes: CodeMaps) -> str | None:
    """The HL7 0001 code for ``raw`` as ``system`` sends it (see :class:`CodeMaps`), or None."""
    return codes.map(system, "sex", raw)


def for_matching(code: str | None) -> str:
    """M/F/O/U from an HL7 0001 code; U when unknown."""
    return _FOR_MATCHING.get(code or "", "U")
