"""The demo project: files built from real images that packages ship, and its import.

- :mod:`~miqa_nb.demo.setup` -- :func:`build_demo`, what ``miqa-nb demo`` runs: the
  files, a catalog with a reviewer in every role (:data:`DEMO_USERS`), the import.
- :mod:`~miqa_nb.demo.artifacts` -- simulated acquisition artifacts, pure functions
  on arrays (usable on any image).
- ``_files`` (private) -- the demo images and the MIQA import file that names them.
"""

from miqa_nb.demo.setup import DEMO_USERS, PROJECT, build_demo

__all__ = ["DEMO_USERS", "PROJECT", "build_demo"]
