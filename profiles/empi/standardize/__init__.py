"""Standardization on registration (REQUIREMENTS A1.10, A1.11): one comparable form per patient fact.

``standardize(record, codes=...)`` returns the record with its fields cleaned
and ``derived`` filled; matching reads only ``derived`` and ``identifiers``.
The keys of ``derived`` (str unless noted, "" when unknown):

- ``family``, ``given``: simplified hanzi without spaces, or upper-case ASCII
  letters for a Latin name; a whole name in one field is split (compound
  surnames honoured). ``family_pinyin``, ``given_pinyin``: lower-case toneless
  pinyin without spaces, so 张三丰, ``ZHANG^SANFENG`` and ``Zhang San Feng``
  agree; surnames read as surnames (单 shan, 曾 zeng, 尉迟 yuchi).
  ``is_hanzi`` (bool).
- ``birth_date`` (``YYYY[MM[DD]]``), ``birth_year``, ``birth_month``,
  ``birth_day``; ``birth_date_invalid``: what was sent when impossible.
- ``sex``: M/F/O/U.
- ``national_id``: the 18-character GB 11643 ID when its check holds (15-digit
  IDs converted); ``national_id_invalid``: the value when it does not;
  ``national_id_birth_date``, ``national_id_sex``: what the ID encodes.
- ``phones``: tuple of valid E.164 numbers (default region CN).
- ``postal_code``, ``city``; ``mother_family``, ``mother_given``.
- ``multiple_birth`` (bool|None), ``birth_order`` (int|None).
- ``marital_status`` (HL7 0002), ``ethnic_group`` (GB 3304): standard codes.

Modules: ``names`` (and ``surnames``), ``sex``, ``dates``, ``phones``,
``resident_id``, ``addresses``, ``codes``; ``record`` puts them together.
"""

from profiles.empi.standardize.codes import CodeMaps
from profiles.empi.standardize.names import parse_dicom_pn
from profiles.empi.standardize.record import standardize

__all__ = ["CodeMaps", "parse_dicom_pn", "standardize"]
