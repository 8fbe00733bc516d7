"""The CE of a pipeline-parallel step divided by the step's global valid tokens before the schedule backwards it.

Why the division: torchtitan 0.2.2 builds its schedules with `scale_grads=False` and hands them its summed CE, so
each microbatch backwards its token SUM, and torchtitan divides by the global valid tokens only after the schedule,
for the log (torchtitan issue 2972). Gradients come out global-valid-tokens times larger than without PP, and
gradient clipping then trains differently. The non-PP path divides before backward; `ScheduleLoss` does the same
inside the schedule, so the sum over microbatches (and over gradient accumulation) is the one-process gradient.
The division sits in the loss value, so every schedule gets it, those that split the backward into input and weight
gradients too (InterleavedZeroBubble, ZBVZeroBubble, DualPipeV): both parts start from the divided loss.
Left as torchtitan 0.2.2 has them: DualPipeV's loss is logged by a rank without the last stage (-1; torchtitan picks
rank 0 for ZBVZeroBubble only), and on CPU it needs parallelism.pipeline_parallel_expert_parallel_overlap = false
(the overlap callback asks for an accelerator stream).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.distributed.pipelining.schedules import _PipelineSchedule
from torchtitan.components.loss import LossFunction


class ScheduleLoss:
    """The loss a pipeline schedule calls on its last stage: the family's summed CE, divided by the step's global
    valid tokens while `divided_by` is open (a training step), the plain sum otherwise (torchtitan's validator
    divides the sums itself); while `weighed` is open, backwarded with the CE's factor of a LET term (its
    `weights`: SALT's 1 - lambda)."""

    def __init__(self, loss_fn: LossFunction):
        self.loss_fn = loss_fn
        self.divisor: torch.Tensor | None = None
        self.ce_factor = 1.0

    def __call__(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(pred, labels)
        if self.divisor is not None:
            loss = loss / self.divisor
        if self.ce_factor == 1.0:
            return loss
        weighed = self.ce_factor * loss
        # the value stays the CE (what the schedule collects and torchtitan logs), the gradient is the weighed one's
        return weighed + (loss - weighed).detach()

    @contextmanager
    def weighed(self, ce_factor: float) -> Iterator[None]:
        self.ce_factor = ce_factor
        try:
            yield
        finally:
            self.ce_factor = 1.0

    @contextmanager
    def divided_by(self, global_valid_tokens: torch.Tensor) -> Iterator[None]:
        self.divisor = global_valid_tokens
        try:
            yield
        finally:
            self.divisor = None


def divide_loss_before_backward(schedule: _PipelineSchedule) -> ScheduleLoss:
    """Put a ScheduleLoss around the loss `schedule` was built with; returns it, for the trainer to open per step.

    The schedule keeps its loss function in `_loss_fn` (torch 2.11-2.13) and calls it only from `step`/`eval`, so
    replacing it after torchtitan built the schedule reaches every call, validation's included.
    """
    if not callable(getattr(schedule, "_loss_fn", None)):
        raise RuntimeError(f"{type(schedule).__name__} has no _loss_fn: this torch's pipeline schedules changed")
    schedule._loss_fn = ScheduleLoss(schedule._loss_fn)
    return schedule._loss_fn
