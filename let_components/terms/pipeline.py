"""The teacher term under pipeline parallelism: added inside the stage that holds its student side.

The loss exists on the last stage only, and block k may sit on any stage. So the term joins the backward where its
student side is computed: a forward hook on that module (block k, or the output head for logits) computes the term
of the microbatch the stage is running and passes the module's output on through `AddToBackward`, an autograd
identity whose backward gives the term a gradient of 1 (Megatron-LM's MoEAuxLossAutoScaler pattern), as if the term
had been added to the final loss. Each microbatch's term is its token SUM over the step's GLOBAL count, exactly as
without PP, weighed by the term's factor of `term.weights` (the last stage weighs the CE by the other,
pipeline_loss.py), so it keeps its weight against the CE.

The teacher reads the whole local batch on that stage's rank (every rank of a data-parallel group reads the same
batch; only the first stage feeds it to the schedule). Its target is cut into the schedule's microbatches as the
schedule cuts its inputs (`torch.tensor_split` along the batch) and handed out in the order the stage runs its
forwards, which is microbatch order in every schedule allowed here (GPipe, 1F1B, Interleaved1F1B).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch.distributed.pipelining import PipelineStage

from . import TeacherTerm


class AddToBackward(torch.autograd.Function):
    """`output` unchanged in forward; in backward, `term` gets a gradient of 1 beside `output`'s own."""

    @staticmethod
    def forward(ctx, output: torch.Tensor, term: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(term)
        return output

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (term,) = ctx.saved_tensors
        return grad_output, torch.ones_like(term)


class StageFeed:
    """One step's teacher targets and valid masks, cut into the schedule's microbatches, and what the term summed."""

    def __init__(self, target: torch.Tensor, valid: torch.Tensor, microbatches: int, normaliser: torch.Tensor,
                 term_factor: float):
        self.targets = torch.tensor_split(target, microbatches)
        self.valids = torch.tensor_split(valid, microbatches)
        self.normaliser, self.term_factor = normaliser, term_factor
        self.used = 0
        self.sums: torch.Tensor | None = None
        """The term's sums over the step (divided by the global count), for metrics and the guard."""

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.used == len(self.targets):
            raise RuntimeError(f"the stage ran more than the schedule's {len(self.targets)} microbatch forwards")
        i, self.used = self.used, self.used + 1
        return self.targets[i], self.valids[i]

    def finish(self) -> torch.Tensor:
        """The step's sums, once every microbatch has been through the stage."""
        if self.used != len(self.targets) or self.sums is None:
            raise RuntimeError(f"the stage ran {self.used} of the schedule's {len(self.targets)} microbatch forwards")
        return self.sums


@contextmanager
def joined(term: TeacherTerm, feed: StageFeed, stages: list[PipelineStage]) -> Iterator[None]:
    """While the schedule runs one step: the term of every microbatch joins the backward of the stage that holds its
    student side (`term.student_side`), after the term's own watching hook (which keeps the state it reads).

    A stage's first step (and the first after validation switched the schedule to forward only) runs one more
    forward before the microbatches: torch's pipelining infers the stage's output shapes from a forward on stand-in
    inputs (`_forward_metadata_inference`). That forward is marked here and passes the hook untouched."""
    inferring = False

    def marked(infer: Callable[..., object]) -> Callable[..., object]:
        def infer_marked(*args, **kwargs):
            nonlocal inferring
            inferring = True
            try:
                return infer(*args, **kwargs)
            finally:
                inferring = False

        return infer_marked

    patched = [stage for stage in stages if hasattr(stage, "_forward_metadata_inference")]
    for stage in patched:
        stage._forward_metadata_inference = marked(stage._forward_metadata_inference)

    def add_term(module: torch.nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        if inferring:  # the stage's shape inference (a forward on stand-in inputs), not a microbatch
            return output
        target, valid = feed.next()
        sums = term.sums(output, target, valid) / feed.normaliser
        feed.sums = sums.detach() if feed.sums is None else feed.sums + sums.detach()
        return AddToBackward.apply(output, feed.term_factor * sums[0])  # the CE's part: the schedule loss's

    try:
        with term.watching():
            handle = term.student_side.register_forward_hook(add_term)
            try:
                yield
            finally:
                handle.remove()
    finally:
        for stage in patched:
            del stage._forward_metadata_inference  # the class's own again
