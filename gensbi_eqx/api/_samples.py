"""What `Estimator.sample` returns: the draws by node name, and how they were drawn."""

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from .._custom_types import Array
from ..samplers import AbstractSampler


@dataclasses.dataclass(frozen=True)
class Samples(Mapping[str, Array]):
    """Draws keyed by node name (``samples["theta"]``, ``dict(samples)``), each
    ``(num_samples, *batch, *shape)`` in user units.

    ``sampler`` is the sampler that ran; ``info`` holds what a sampling strategy reports beside
    the draws (e.g. an acceptance rate or an effective sample size), empty when it reports
    nothing.
    """

    draws: dict[str, Array]
    sampler: AbstractSampler
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
