"""The reviewer dashboard served by Voila: its model (no widgets) and its widgets."""
