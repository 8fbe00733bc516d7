"""A student under pipeline parallelism (`parallelism.pipeline_parallel_degree > 1`): torchtitan's stage split, and
the CE divided by the step's global valid tokens before the schedule backwards it.

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
from torch import nn
from torch.distributed.pipelining.schedules import _PipelineSchedule
from torchtitan.components.loss import LossFunction
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.protocols.train_spec import BaseModelArgs, ParallelizeFunction, PipeliningFunction

from ..config import LETConfigError


def pipeline_student(pipelining_fn: PipeliningFunction | None) -> PipeliningFunction | None:
    """The family's pipelining function (torchtitan's `pipeline_llm`, or None where the family has none), for a
    model that may carry `let_projection`.

    torchtitan's split keeps, per stage, the named root modules of that stage and sets every other root module to
    None. A baseline's `let_projection` is None, which the split never sees; a learned projection would vanish from
    every stage, so it is refused here rather than lost.
    """
    if pipelining_fn is None:
        return None

    def pipeline(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig, device: torch.device,
                 model_args: BaseModelArgs, parallelize_fn: ParallelizeFunction, loss_fn: LossFunction):
        if getattr(model, "let_projection", None) is not None:
            # LET under PP goes here: the projection must travel with block k (let.student_layer), i.e. join the
            # module names of the stage that holds f"layers.{k}" (parallelism.module_fqns_per_model_part, or
            # torchtitan's generate_llm_fqn_per_model_part plus "let_projection" on that stage)
            raise LETConfigError(
                "parallelism.pipeline_parallel_degree > 1 with a learned let.projection: the stage split does not "
                "place let_projection yet; use let.enable = false or no pipeline parallelism"
            )
        return pipelining_fn(model, parallel_dims, job_config, device, model_args, parallelize_fn, loss_fn)

    return pipeline


class ScheduleLoss:
    """The loss a pipeline schedule calls on its last stage: the family's summed CE, divided by the step's global
    valid tokens while `divided_by` is open (a training step), the plain sum otherwise (torchtitan's validator
    divides the sums itself)."""

    def __init__(self, loss_fn: LossFunction):
        self.loss_fn = loss_fn
        self.divisor: torch.Tensor | None = None

    def __call__(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(pred, labels)
        return loss if self.divisor is None else loss / self.divisor

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
