"""The catalog's storage: one DuckDB file shared by processes, its schema and queries.

:class:`~miqa_nb.catalog.Catalog` is the public face; this package holds the parts it
is made of.
"""
