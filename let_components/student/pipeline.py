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

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.distributed.pipelining.schedules import PipelineScheduleSingle, _PipelineSchedule, get_schedule_class
from torchtitan.components.loss import LossFunction
from torchtitan.config import JobConfig
from torchtitan.distributed import ParallelDims
from torchtitan.distributed.pipeline_parallel import generate_llm_fqn_per_model_part
from torchtitan.protocols.train_spec import BaseModelArgs, ParallelizeFunction, PipeliningFunction

from ..config import LETConfigError


def pipeline_student(pipelining_fn: PipeliningFunction | None) -> PipeliningFunction | None:
    """The family's pipelining function (torchtitan's `pipeline_llm`, or None where the family has none), for a
    model that may carry `let_projection`.

    torchtitan's split keeps, per stage, the named root modules of that stage and sets every other root module to
    None. A baseline's `let_projection` is None, which the split never sees; a learned projection travels with block
    k: its name joins the stage that holds f"layers.{k}" (parallelism.module_fqns_per_model_part, torchtitan's own
    split when the config names none).
    """
    if pipelining_fn is None:
        return None

    def pipeline(model: nn.Module, parallel_dims: ParallelDims, job_config: JobConfig, device: torch.device,
                 model_args: BaseModelArgs, parallelize_fn: ParallelizeFunction, loss_fn: LossFunction):
        if getattr(model, "let_projection", None) is not None:
            parts = with_projection(stage_module_names(job_config, parallel_dims.pp, model_args.n_layers),
                                    job_config.let.student_layer)
            job_config = copy.copy(job_config)  # this run's split, not a change to the shared config
            job_config.parallelism = dataclasses.replace(job_config.parallelism, module_fqns_per_model_part=parts)
        return pipelining_fn(model, parallel_dims, job_config, device, model_args, parallelize_fn, loss_fn)

    return pipeline


def stage_module_names(job_config: JobConfig, pp: int, n_layers: int) -> list[list[str]]:
    """The root module names of every stage as torchtitan 0.2.2's pipeline_llm splits them: the config's
    parallelism.module_fqns_per_model_part, else its generated split over the schedule's virtual stages."""
    parallelism = job_config.parallelism
    if parallelism.module_fqns_per_model_part is not None:
        return [list(names) for names in parallelism.module_fqns_per_model_part]
    single = issubclass(get_schedule_class(parallelism.pipeline_parallel_schedule), PipelineScheduleSingle)
    weights = (parallelism.pipeline_parallel_first_stage_less_layers,
               parallelism.pipeline_parallel_last_stage_less_layers)
    if parallelism.pipeline_parallel_layers_per_stage is not None:
        stages = math.ceil((n_layers + sum(weights)) / parallelism.pipeline_parallel_layers_per_stage)
    else:
        stages = pp * (1 if single else 2)
    return generate_llm_fqn_per_model_part(stages, n_layers, *weights)


def with_projection(stages: list[list[str]], student_layer: int) -> list[list[str]]:
    """`stages` with "let_projection" in the stage that holds block `student_layer`: the capture hook maps block
    k's output with it, on that stage."""
    block = f"layers.{student_layer}"
    holder = next((i for i, names in enumerate(stages) if block in names), None)
    if holder is None:
        raise LETConfigError(f"let.student_layer={student_layer}: no pipeline stage holds {block} ({stages})")
    return [[*names, "let_projection"] if i == holder else names for i, names in enumerate(stages)]


class ScheduleLoss:
    """The loss a pipeline schedule calls on its last stage: the family's summed CE, divided by the step's global
    valid tokens while `divided_by` is open (a training step), the plain sum otherwise (torchtitan's validator
    divides the sums itself); while `weighed` is open, backwarded with the weight a LET term's combine gives it."""

    def __init__(self, loss_fn: LossFunction):
        self.loss_fn = loss_fn
        self.divisor: torch.Tensor | None = None
        self.weigh: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(pred, labels)
        if self.divisor is not None:
            loss = loss / self.divisor
        if self.weigh is None:
            return loss
        weighed = self.weigh(loss)
        # the value stays the CE (what the schedule collects and torchtitan logs), the gradient is the weighed one's
        return weighed + (loss - weighed).detach()

    @contextmanager
    def weighed(self, weigh: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
        self.weigh = weigh
        try:
            yield
        finally:
            self.weigh = None

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
