"""Losses, condition-mask samplers and the training loop."""

from ._history import History as History
from ._loop import make_train_step as make_train_step
from ._loop import make_fused_train_steps as make_fused_train_steps
from ._loop import optimizer_for as optimizer_for
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
    "make_fused_train_steps",
    "make_train_step",
    "never_all_observed",
    "optimizer_for",
    "paper_schedule",
    "train",
]
