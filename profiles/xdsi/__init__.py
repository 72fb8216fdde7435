"""XDS-I.b Imaging Document Source: per-study KOS manifests published to XDS (RAD-68) and RAD-69 retrieval.

- ``kos``: the Key Object Selection Document of a study (PS3.3 A.35.4, TID 2010);
- ``metadata``: its XDS DocumentEntry and the ITI-41 Provide and Register request;
- ``publisher``: :class:`Publisher` builds, submits and replaces manifests (table ``esb_xdsi_manifests``);
- ``rad69``: :class:`ImagingDocumentSource`, RAD-69 Retrieve Imaging Document Set;
- ``config``: the source's identity and affinity-domain codes;
- ``schema``: table ``esb_xdsi_manifests`` (migration 0008);
- ``wiring``: :func:`attach` puts both on a running engine.

See README.md for the readings of RAD TF-3 behind the choices.
"""
