"""Fixtures for the raster tests: the cog job's stages run in-process for one input (``kit.runner``)."""

from __future__ import annotations

import pytest
from kit import runner


@pytest.fixture
def convert_one(tmp_path):
    """``convert_one(src, output=None, storage_options=None, **params)`` -> (validation, cog result).

    Runs the cog job on one input in this process up to its cog stage; the output defaults to
    ``tmp_path / "out"``.
    """

    def run(src, output=None, storage_options=None, **params):
        return runner.convert_one(src, output or tmp_path / "out", storage_options, **params)

    return run
