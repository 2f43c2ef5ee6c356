"""The words every layer shares: errors, vocabulary, reports of problems, and MIQA's rules.

Nothing here does I/O but :mod:`~miqa_nb.core.files`, the one home of atomic file
writes; every other package may import from here, and this package imports from none
of them.
"""
