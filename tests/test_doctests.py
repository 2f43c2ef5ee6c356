"""The examples in the docstrings of the pure modules run, and hold."""

import doctest
import importlib

import pytest

#: Modules with examples, every one of which must run as written (a catalog or a file
#: only in a temporary folder the example makes and removes).
MODULES = [
    "miqa_nb.catalog",
    "miqa_nb.core.arrow",
    "miqa_nb.core.files",
    "miqa_nb.core.identity",
    "miqa_nb.core.permissions",
    "miqa_nb.core.rules",
    "miqa_nb.core.settings",
    "miqa_nb.core.vocabulary",
    "miqa_nb.dashboard.folders",
    "miqa_nb.dashboard.staged",
    "miqa_nb.dashboard.uploads",
    "miqa_nb.demo.artifacts",
    "miqa_nb.exchange._json",
    "miqa_nb.ingest.uploads",
    "miqa_nb.exchange.analysis",
    "miqa_nb.exchange.limits",
    "miqa_nb.exchange.scanning",
    "miqa_nb.review.decision",
    "miqa_nb.store.decisions",
    "miqa_nb.store.names",
    "miqa_nb.volumes.cache",
    "miqa_nb.volumes.io",
    "miqa_nb.widgets._base",
    "miqa_nb.widgets._shortcuts",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
