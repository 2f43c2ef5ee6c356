"""The dashboard's server: Voila's pages and pre-heated kernels, behind sign-in.

Loaded only in the process :mod:`miqa_nb.serve` starts (``python -m miqa_nb.server``),
never by a kernel or the command line.
"""
