"""The image archive hosted on the bus: index and storage of DICOM instances, Q/R, DICOMweb, XDS-I.b."""
