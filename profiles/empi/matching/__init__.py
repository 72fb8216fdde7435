"""Record matching for the EMPI (A1.6, A1.7, A1.20): blocking, comparators, Fellegi-Sunter weights.

A :class:`Model` (read from YAML with :func:`load_model`, the shipped default
in ``profiles/empi/matching.yaml``) says which keys block records together,
how each field is compared and what each outcome weighs. A :class:`Matcher`
scores one pair; :func:`link_batch` clusters a bulk load; :func:`estimate`
learns m and u from unlabelled records. Matching reads only ``derived`` (what
:func:`profiles.empi.standardize.standardize` fills) and ``identifiers``.

Modules: ``model`` (the data), ``config`` (YAML), ``comparators`` (the
kinds: ``kinds``, ``text``, ``identity``), ``blocking`` (keys), ``matcher``
(scoring), ``batch`` (bulk linking), ``em`` (estimation), ``quality``
(pairwise metrics), ``synthetic`` and ``corrupt`` (the seeded Chinese test
population). The file format and the kinds' tests: ``README.md`` here.
"""

from profiles.empi.matching.batch import BatchResult, link_batch
from profiles.empi.matching.config import DEFAULT_MODEL_FILE, dump_model, load_model, parse_model
from profiles.empi.matching.em import Estimate, estimate, fit
from profiles.empi.matching.matcher import Evidence, Matcher, MatchResult
from profiles.empi.matching.model import BlockingRule, Comparison, KeyPart, Level, Model

__all__ = [
    "DEFAULT_MODEL_FILE",
    "BatchResult",
    "BlockingRule",
    "Comparison",
    "Estimate",
    "Evidence",
    "KeyPart",
    "Level",
    "MatchResult",
    "Matcher",
    "Model",
    "dump_model",
    "estimate",
    "fit",
    "link_batch",
    "load_model",
    "parse_model",
]
