"""Scans from the scanner: archives received by the import service, DICOM in, NIfTI out.

Below the catalog (beside :mod:`miqa_nb.exchange`): safe extraction of uploaded archives
(:mod:`~miqa_nb.ingest.archives`) and DICOM series read, routed and converted
(:mod:`~miqa_nb.ingest.dicom`). XNAT's import service itself (the server's handlers,
the prearchive) builds on these.
"""
