"""Losses, condition-mask samplers and the training loop."""

from ._history import History as History
from ._loop import paper_schedule as paper_schedule
from ._loop import train as train
from ._loss import batch_loss as batch_loss
from ._loss import example_loss as example_loss
from ._masks import BernoulliMasks as BernoulliMasks
from ._masks import PosteriorMasks as PosteriorMasks
from ._masks import StructuredMasks as StructuredMasks
from ._masks import never_all_observed as never_all_observed

__all__ = [
    "BernoulliMasks",
    "History",
    "PosteriorMasks",
    "StructuredMasks",
    "batch_loss",
    "example_loss",
    "never_all_observed",
    "paper_schedule",
    "train",
]
