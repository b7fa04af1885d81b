"""Repeated i.i.d. observations of a node, as a query gives them: ``gs.Trials(X)``."""

from collections.abc import Sequence

import equinox as eqx
import numpy as np

from .._custom_types import ArrayLike


class Trials(eqx.Module):
    """``n`` independent observations of one node, all for the same parameters:
    ``est.sample(key, {"x": gs.Trials(X)}, num_samples)`` draws from ``p(rest | x_1 ... x_n)``.

    **Arguments:**
    - `values`: ``(*batch, n, *node_shape)``: ``n`` trials per condition (the node's shape as
      in training, e.g. ``(n, 2)`` for a node of 2 scalars).
    - `prior`: the prior of the entries drawn (e.g. ``task.prior``, anything with ``.sample(key,
      num)`` returning ``(num, num_latent)`` in layout order), whose score the composition
      subtracts ``n - 1`` times. It is used through its mean and covariance (exact for Gaussian
      priors). ``None``: a Gaussian with the training data's mean and variance per entry,
      which is what the standardiser learned (correlations between entries are then ignored).
    - `corrected`: ``False`` sums the single-trial scores naively (biased; for comparison).

    The model needs a method with a score at every time (gs.VESDE, gs.VPSDE, gs.EDM).
    See the how-to "Many trials per parameter".
    """

    values: np.ndarray
    prior: object = None
    corrected: bool = True

    def __init__(self, values: ArrayLike | Sequence, prior: object = None, corrected: bool = True):
        try:
            self.values = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"gs.Trials(values) takes an array of real numbers, got {type(values).__name__}."
            ) from error
        if not np.isfinite(self.values).all():
            raise ValueError("`values` of gs.Trials must be finite: every trial is observed.")
        if prior is not None and not callable(getattr(prior, "sample", None)):
            raise TypeError(
                f"`prior` must have .sample(key, num) (e.g. task.prior), got {prior!r}."
            )
        self.prior = prior
        self.corrected = bool(corrected)
