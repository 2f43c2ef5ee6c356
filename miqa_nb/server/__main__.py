"""``python -m miqa_nb.server NOTEBOOK [options]``: see :mod:`miqa_nb.server.app`."""

from miqa_nb.server.app import main

if __name__ == "__main__":
    main()
