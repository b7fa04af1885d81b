"""Input checks shared by the diagnostics: every one refuses bad shapes the same way."""

from collections.abc import Sequence

import numpy as np

from .._custom_types import ArrayLike


def as_float_array(value: ArrayLike, argument: str) -> np.ndarray:
    """``value`` as a float NumPy array, or a TypeError naming ``argument``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{argument}` must be an array of numbers.") from error
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"`{argument}` must hold real numbers, got dtype {array.dtype}.")
    return array.astype(np.result_type(array.dtype, np.float32))


def check_finite(array: np.ndarray, argument: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"`{argument}` (shape {array.shape}) must be finite, got {int(bad.sum())} NaN or "
            f"inf entries."
        )


def check_positive_int(value, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{argument}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def samples_and_truths(samples: ArrayLike, truths: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Check ``samples (S, N, d)`` against ``truths (N, d)``; both finite, ``S >= 1``."""
    samples = as_float_array(samples, "samples")
    truths = as_float_array(truths, "truths")
    if samples.ndim != 3 or 0 in samples.shape:
        raise ValueError(
            f"`samples` must have shape (num_samples, N, d) with no empty axis, got "
            f"{samples.shape}."
        )
    if truths.shape != samples.shape[1:]:
        raise ValueError(
            f"`truths` must have shape (N, d) = {samples.shape[1:]} to match `samples` of shape "
            f"{samples.shape}, got {truths.shape}."
        )
    check_finite(samples, "samples")
    check_finite(truths, "truths")
    return samples, truths


def names_tuple(value: str | Sequence[str], argument: str) -> tuple[str, ...]:
    """A node name or a sequence of them as a non-empty tuple of unique names."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError(
            f"`{argument}` must be a node name or a non-empty sequence of unique names, got "
            f"{value!r}."
        )
    return names
