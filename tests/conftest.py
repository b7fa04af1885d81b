import itertools

import jax
import jax.random as jr
import pytest


jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture
def getkey():
    """A fresh, deterministic key on every call within one test."""
    counter = itertools.count()

    def _getkey():
        return jr.key(next(counter))

    return _getkey
