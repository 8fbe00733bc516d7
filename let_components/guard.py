"""The non-finite guard of the teaching steps: a NaN or inf stops the run before the optimizer moves a weight.

While the teacher teaches (lambda > 0), each step marks on the device which of its terms went non-finite: the
teacher's output, its one-off LM loss, the CE term, the teacher term (alignment or distillation) and the gradients.
An optimizer step pre-hook (the seam torchtitan itself uses for MoE load balancing) reduces those marks over all
ranks and raises the one-line LETRuntimeError on every rank alike, so no rank is left waiting in a collective,
before the optimizer step, the LR step and the step's checkpoint save.

The gradients are judged by the total norm torchtitan's train_step has just computed for clipping (global over
all ranks and shards): a NaN or inf in any gradient makes it non-finite. torchtitan keeps that norm in a local
variable, so `GradNormTap` wraps the one function it calls for it; the guard adds no pass over the gradients.

Why one host sync per teaching step rather than skipping the step on the device: a skipped step still advances the
LR schedule and the data, and would surface only at the next sync, which torchtitan makes on log steps only. After
the teacher leaves, the step is torchtitan's own, unguarded and without the sync.
"""

from collections.abc import Callable

import torch
import torch.distributed as dist
import torchtitan.distributed.utils as dist_utils
from torch.distributed.tensor import DTensor

from .config import LETRuntimeError

STEP_VALUES = ("teacher_output", "teacher_lm_loss", "ce_loss")
"""What the guard checks besides the teacher term (named by the term) and grad_norm (torchtitan's total gradient
norm), in the words of its error line."""


class GradNormTap:
    """torchtitan's clip_grad_norm_, unchanged, keeping the total norm of the step in flight for the guard."""

    def __init__(self, clip: Callable[..., torch.Tensor]):
        self.clip = clip
        self.norm: torch.Tensor | None = None

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        self.norm = self.clip(*args, **kwargs)
        return self.norm

    def take(self) -> torch.Tensor:
        """The norm of this step, once: a step that never clipped is a bug, not a finite gradient."""
        norm, self.norm = self.norm, None
        if norm is None:
            raise RuntimeError("torchtitan's train_step did not call clip_grad_norm_ before the optimizer step")
        return norm


def tap_grad_norm() -> GradNormTap:
    """Install the tap once per process (train_step looks clip_grad_norm_ up on torchtitan's module at call time)."""
    if not isinstance(dist_utils.clip_grad_norm_, GradNormTap):
        dist_utils.clip_grad_norm_ = GradNormTap(dist_utils.clip_grad_norm_)
    return dist_utils.clip_grad_norm_


class NonFiniteGuard:
    """Per-step non-finite marks kept on the device until `check`, which runs once per step before the optimizer."""

    def __init__(self, device: torch.device, teacher_path: str, term_name: str):
        self.teacher_path = teacher_path
        self.names = (*STEP_VALUES, term_name, "grad_norm")
        self._marks = torch.zeros(len(self.names), device=device)
        self.grad_norm = tap_grad_norm()

    def start_step(self) -> None:
        self._marks.zero_()

    def record(self, **terms: torch.Tensor) -> None:
        """Mark each named value (one of `names`) that holds a NaN or inf; no host sync."""
        for name, value in terms.items():
            index = self.names.index(name)
            value = value.detach()
            # the CE under loss parallel (TP): this rank's part suffices, a non-finite part is non-finite here and
            # `check` MAX-reduces the marks over all ranks; making it whole could add a collective every step
            if isinstance(value, DTensor):
                value = value.to_local()
            self._marks[index] += (~torch.isfinite(value)).any().to(self._marks.dtype)

    def check(self, step: int, weight: float) -> None:
        """Raise on every rank if any rank marked a term, or the gradients' total norm is not finite."""
        self.record(grad_norm=self.grad_norm.take())
        marks = self._marks.clone()
        if dist.is_initialized():
            dist.all_reduce(marks, op=dist.ReduceOp.MAX)
        bad = [name for name, mark in zip(self.names, marks.tolist(), strict=True) if mark > 0]
        if bad:
            raise LETRuntimeError(nonfinite_message(bad, step, weight, self.teacher_path))


def nonfinite_message(bad: list[str], step: int, weight: float, teacher_path: str) -> str:
    """The guard's one line: what went non-finite, where, and what the user can change."""
    return (
        f"non-finite {', '.join(bad)} at step {step} (lambda={weight:.5g}, "
        f"let.teacher_path='{teacher_path}'): stopped before the optimizer step, so no weight or checkpoint of this "
        "step was written; check the teacher, or resume from the last checkpoint with a smaller let.lambda_0 or "
        "optimizer.lr"
    )
