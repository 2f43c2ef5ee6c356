"""The review session (no widgets): the queue, the open scan and its view, and the
background work that keeps it in step with the shared catalog.
"""

from miqa_nb.review.session import ReviewSession

__all__ = ["ReviewSession"]
