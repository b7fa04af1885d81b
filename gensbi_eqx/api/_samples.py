"""What `Estimator.sample` returns: the draws by node name, and how they were drawn."""

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from .._custom_types import Array
from ..samplers import SMC, AbstractSampler, Rejection


@dataclasses.dataclass(frozen=True)
class Samples(Mapping[str, Array]):
    """Draws keyed by node name (``samples["theta"]``, ``dict(samples)``), each
    ``(num_samples, *batch, *shape)`` in user units.

    ``sampler`` is the sampler (or, under constraints, the strategy) that ran; ``info`` holds
    what a constrained draw reports beside the draws, empty without constraints:
    ``info["strategy"]`` (``"rejection"``, ``"smc"`` or ``"guidance"``) and, per condition
    (the query's batch shape), ``acceptance`` (rejection's acceptance rate, also the pilot
    round's when `SMC` took over), ``ess`` (`SMC`'s effective sample size as a fraction of the
    draws), ``log_probability`` (`SMC`'s estimate of the log probability of the constraints
    under the model's conditional), ``resamplings``, and ``proposals`` (draws proposed per
    condition by rejection). A query with `Trials` reports ``trials`` (their number),
    ``correction`` and, per condition, ``diverged`` (the share of draws beyond 10 prior sds).
    """

    draws: dict[str, Array]
    sampler: AbstractSampler | Rejection | SMC
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> Array:
        return self.draws[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.draws)

    def __len__(self) -> int:
        return len(self.draws)

    def __repr__(self) -> str:
        shapes = {name: tuple(value.shape) for name, value in self.draws.items()}
        return f"Samples({shapes}, sampler={self.sampler!r})"
