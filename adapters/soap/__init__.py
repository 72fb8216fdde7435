"""SOAP 1.1/1.2 with WS-Addressing and MTOM (issue 4): envelope handling first.

The ``soap:`` consumer and producer arrive on top of :mod:`adapters.soap.envelope`.
"""
