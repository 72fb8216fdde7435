"""The enterprise master patient index: one person behind many local patient IDs.

Layout: ``model`` (the demographic record every part speaks), ``standardize``
(names, pinyin, sex, dates, phones, resident IDs, code maps), ``matching``
(blocking, comparators, Fellegi-Sunter weights, EM), ``store`` (tables),
``service`` (the ``service:empi/...`` operations). PIX and PDQ in
``profiles/pix`` and ``profiles/pdq`` are HL7 faces of the same service.
"""
