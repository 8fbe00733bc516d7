"""The non-finite guard of the LET step: a NaN or inf stops the run before the optimizer moves a weight.

While the teacher aligns the student (lambda > 0), each step marks on the device which of its terms went non-finite:
the teacher's hidden state, its one-off LM loss, the CE term, the alignment term (signal = "hidden") or the
distillation term (signal = "logits"), and the gradients. An optimizer step pre-hook (the seam torchtitan itself
uses for MoE load balancing) reduces those marks over all ranks and raises the one-line LETConfigError on every rank
alike, so no rank is left waiting in a collective, before the optimizer step, the LR step and the step's
checkpoint save.

Why one host sync per aligned step rather than skipping the step on the device: a skipped step still advances the
LR schedule and the data, and would surface only at the next sync, which torchtitan makes on log steps only. The sync
costs the CPU's run-ahead over the optimizer step; measured in docs/benchmarks.md (guard section). After stop_step
the step is torchtitan's own, unguarded and without the sync.
"""

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from .config import LETConfigError

TERMS = ("teacher_hidden", "teacher_lm_loss", "ce_loss", "alignment_loss", "distillation_loss", "grad_norm")
"""What the guard checks, in the words of its error line (grad_norm: the gradients, checked after clipping)."""


class NonFiniteGuard:
    """Per-step non-finite marks kept on the device until `check`, which runs once per step before the optimizer."""

    def __init__(self, device: torch.device, teacher_path: str):
        self.teacher_path = teacher_path
        self._marks = torch.zeros(len(TERMS), device=device)

    def start_step(self) -> None:
        self._marks.zero_()

    def record(self, **terms: torch.Tensor) -> None:
        """Mark each named term (a name of TERMS) that holds a NaN or inf; no host sync."""
        for name, value in terms.items():
            index = TERMS.index(name)
            self._marks[index] += (~torch.isfinite(value.detach())).any().to(self._marks.dtype)

    def check(self, parameters: list[torch.nn.Parameter], step: int, alignment_weight: float) -> None:
        """Raise on every rank if any rank marked a term or holds a non-finite gradient."""
        grads = [p.grad.to_local() if isinstance(p.grad, DTensor) else p.grad for p in parameters if p.grad is not None]
        if grads:
            # the local shards' norm: a NaN/inf anywhere in them makes it non-finite, as torchtitan's total norm
            self.record(grad_norm=torch.nn.utils.get_total_norm(grads, foreach=True))
        marks = self._marks.clone()
        if dist.is_initialized():
            dist.all_reduce(marks, op=dist.ReduceOp.MAX)
        bad = [name for name, mark in zip(TERMS, marks.tolist(), strict=True) if mark > 0]
        if bad:
            raise LETConfigError(nonfinite_message(bad, step, alignment_weight, self.teacher_path))


def nonfinite_message(bad: list[str], step: int, alignment_weight: float, teacher_path: str) -> str:
    """The guard's one line: what went non-finite, where, and what the user can change."""
    return (
        f"non-finite {', '.join(bad)} at step {step} (lambda={alignment_weight:.5g}, "
        f"let.teacher_path='{teacher_path}'): stopped before the optimizer step, so no weight or checkpoint of this "
        "step was written; check the teacher, or resume from the last checkpoint with a smaller let.lambda_0 or "
        "optimizer.lr"
    )
