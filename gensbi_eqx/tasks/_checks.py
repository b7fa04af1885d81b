"""Argument checks shared by the distributions, the tasks and the MCMC references.

Each raises a ValueError that names the argument, what was expected and what was given.
"""

import functools
import inspect
from collections.abc import Callable

import equinox as eqx

from .._custom_types import Array


def check_num_samples(n: int, name: str = "n") -> None:
    """Raise a ValueError unless ``n`` is a positive Python int (bools are refused)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"`{name}` must be a positive int, got {n!r}.")


def jit_checking_counts(*names: str) -> Callable[[Callable], Callable]:
    """``eqx.filter_jit``, after checking that the named arguments are positive ints.

    The check runs on every call, outside the compiled function: the compile cache cannot tell
    ``True`` from ``1``, so a check inside it would be skipped once ``1`` has been compiled.
    """

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        jitted = eqx.filter_jit(fn)

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            for name in names:
                if name in arguments:
                    check_num_samples(arguments[name], name)
            return jitted(*args, **kwargs)

        return checked

    return decorate


def _format_shape(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


def check_shape(array: Array, name: str, shape: tuple[int | str, ...]) -> None:
    """Raise a ValueError naming ``name``, ``shape`` and ``array.shape`` unless they match.

    In ``shape`` an int is an exact size, a str (``"n"``) an axis of any size, and ``"*batch"``,
    first only, any number of leading axes: ``check_shape(theta, "theta", ("*batch", 3))``.
    Shapes are static, so this runs at trace time under ``jit``.
    """
    given = array.shape
    if shape[:1] == ("*batch",):
        shape = shape[1:]
        ok = len(given) >= len(shape) and _sizes_match(given[len(given) - len(shape) :], shape)
        expected = ("*batch", *shape)
    else:
        ok = len(given) == len(shape) and _sizes_match(given, shape)
        expected = shape
    if not ok:
        raise ValueError(
            f"`{name}` must have shape {_format_shape(expected)}, got shape {given}."
        )


def _sizes_match(given: tuple[int, ...], shape: tuple[int | str, ...]) -> bool:
    return all(isinstance(size, str) or size == axis for axis, size in zip(given, shape))


def check_noise_std(noise_std: float) -> float:
    """``noise_std`` as a float, after checking it is a real number ``>= 0``."""
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or noise_std < 0:
        raise ValueError(f"`noise_std` must be a float >= 0, got {noise_std!r}.")
    return float(noise_std)
