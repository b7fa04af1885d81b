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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program when a test module ends. Each XLA CPU executable holds its
    own memory mappings, and one process that compiles the whole suite's programs runs past
    the kernel's mapping limit (vm.max_map_count) and crashes inside the compiler. Tests
    within a module still share their compiled functions."""
    yield
    jax.clear_caches()
