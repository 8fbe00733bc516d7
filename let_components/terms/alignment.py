"""The LET alignment term: negative cosine between the student's block-k state and the teacher's state.

`alignment_loss` is the math (testable without a config); `AlignmentTerm` is the teacher term of signal = "hidden"
as the trainer's step uses it (terms/__init__.py), built once from the config like torchtitan's loss.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torchtitan.components.tokenizer import BaseTokenizer
from torchtitan.distributed import ParallelDims
from torchtitan.tools.logging import logger

from ..config import JobConfig
from ..teacher import TeacherModel, TeacherSource
from ..tokens import TokenAlignment
from . import TeacherTerm
from .capture import BlockCapture, SequenceShard

AlignmentLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate_width(hidden: torch.Tensor, width: int, align_corners: bool = True) -> torch.Tensor:
    """The paper's parameter-free map: each hidden vector linearly resampled to `width` entries.

    align_corners=True maps entry 0 to entry 0 and the last to the last; False is F.interpolate's default (entries
    as the centres of equal cells). The paper does not say which; they give different targets (docs/choosing.md).
    """
    if hidden.shape[-1] == width:
        return hidden
    flat = hidden.reshape(-1, 1, hidden.shape[-1])
    resized = F.interpolate(flat, size=width, mode="linear", align_corners=align_corners)
    return resized.reshape(*hidden.shape[:-1], width)


def alignment_loss(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, valid: torch.Tensor, align_corners: bool = True
) -> torch.Tensor:
    """SUM over valid positions of -cos(student, teacher), in float32.

    A sum, not a mean: the trainer divides it by the global number of positions that count, exactly like
    torchtitan's cross-entropy, which keeps it correct under data parallelism and gradient accumulation. The teacher
    vector is resized to the student width when the widths differ (projection = "interpolate"); with
    projection = "linear" the student state arrives already mapped to the teacher width.
    """
    teacher = interpolate_width(teacher_hidden.float(), student_hidden.shape[-1], align_corners)
    cosine = (F.normalize(student_hidden.float(), dim=-1) * F.normalize(teacher, dim=-1)).sum(-1)
    # a SUM over the positions that count, never a mean: the step divides it by their GLOBAL count, as torchtitan
    # divides its CE sum by global_valid_tokens, so a rank's share of the gradient is right at any dp x accumulation
    return -(cosine * valid).sum()


class AlignmentTerm(TeacherTerm):
    """signal = "hidden" (LET): the teacher's state pulls the output of student block k (read by a forward hook)."""

    name = "alignment_loss"
    log_formats = {"alignment_loss": "8.5f", "cosine": "7.4f"}
    token_split = ("loss", "tp")
    """Its sums cover this rank's sequence shard under TP, its batch share under data/context parallelism."""

    def __init__(self, job_config: JobConfig, model_parts: list[nn.Module], parallel_dims: ParallelDims | None = None):
        let, compile_config = job_config.let, job_config.compile
        self.capture = BlockCapture(model_parts, let.student_layer)
        self.student_side = self.capture.block
        """What the term reads of the student: block k (None on a pipeline stage without it)."""
        self.shard = SequenceShard(parallel_dims)
        self.loss_fn: AlignmentLoss = partial(alignment_loss, align_corners=let.interpolate_align_corners)
        if compile_config.enable and "loss" in compile_config.components:
            logger.info("[LET] Compiling the alignment loss with torch.compile")
            self.loss_fn = torch.compile(self.loss_fn, backend=compile_config.backend)

    def describe(self, job_config: JobConfig) -> str:
        let = job_config.let
        corners = f", align_corners={let.interpolate_align_corners}" if let.projection == "interpolate" else ""
        return (f"student block {let.student_layer} <- teacher layer {let.teacher_layer}, "
                f"projection={let.projection}{corners}")

    def teach(self, teacher: TeacherModel, hidden: torch.Tensor) -> torch.Tensor:
        return hidden

    def lm_logits(self, teacher: TeacherModel, signal: torch.Tensor) -> torch.Tensor:
        return teacher.logits(signal)

    @contextmanager
    def watching(self) -> Iterator[None]:
        with self.capture.capturing():
            yield

    def sums(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[alignment SUM]: the state block k produced in the forward just watched, against the teacher's, over the
        positions that state covers on this rank (all of them, or its sequence shard under TP)."""
        return self.loss_fn(self.capture.pop(), self.shard(target), self.shard(valid)).unsqueeze(0)

    def weights(self, weight: float) -> tuple[float, float]:
        return 1.0, weight  # CE + lambda * term

    def metrics(self, values: list[float]) -> dict[str, float]:
        return {"alignment_loss": values[0], "cosine": -values[0]}


class Alignment:
    """The option signal = "hidden": no keys of its own to check, and any token alignment will do."""

    def check_config(self, job_config: JobConfig, alignment: TokenAlignment) -> None:
        pass

    def build(self, job_config: JobConfig, model_parts: list[nn.Module], tokenizer: BaseTokenizer, vocab_size: int,
              teacher: TeacherSource, parallel_dims: ParallelDims) -> AlignmentTerm:
        return AlignmentTerm(job_config, model_parts, parallel_dims)
