"""Fixtures of the demo-data tests: a MONA_HOME of their own, so the cached builds start empty."""

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("mona_home")
        mp.setenv("MONA_HOME", str(path))
        yield path

