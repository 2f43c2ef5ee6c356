"""The parts of the Voila process that :mod:`miqa_nb.serve` starts: loaded by that
process (named in ``voila_app/voila.json``), never by a kernel or a notebook."""
