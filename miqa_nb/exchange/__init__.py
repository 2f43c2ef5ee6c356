"""Files in and out: MIQA's import/export formats, validation, file locations, the diff
and apply of an import, and exports.
"""
