"""The LET alignment term: negative cosine between the student's block-k state and the teacher's state.

`alignment_loss` is the math (testable without a config); `build_alignment_loss` decides the wiring
(compiled or not), as torchtitan's components/loss.py does for cross-entropy.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.config import JobConfig
from torchtitan.tools.logging import logger

AlignmentLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate_width(hidden: torch.Tensor, width: int) -> torch.Tensor:
    """The paper's parameter-free map: each hidden vector linearly resampled to `width` entries."""
    if hidden.shape[-1] == width:
        return hidden
    flat = hidden.reshape(-1, 1, hidden.shape[-1])
    resized = F.interpolate(flat, size=width, mode="linear", align_corners=True)
    return resized.reshape(*hidden.shape[:-1], width)


def alignment_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SUM over valid tokens of -cos(student, teacher), in float32.

    A sum, not a mean: the trainer divides it by the global number of valid tokens exactly like torchtitan's
    cross-entropy, which keeps it correct under data parallelism and gradient accumulation. The teacher
    vector is resized to the student width when the widths differ (projection = "interpolate"); with
    projection = "linear" the student state arrives already mapped to the teacher width.
    """
    teacher = interpolate_width(teacher_hidden.float(), student_hidden.shape[-1])
    cosine = (F.normalize(student_hidden.float(), dim=-1) * F.normalize(teacher, dim=-1)).sum(-1)
    valid = labels != IGNORE_INDEX
    return -(cosine * valid).sum()


def build_alignment_loss(job_config: JobConfig) -> AlignmentLoss:
    """The alignment loss, compiled like the student when torch.compile covers the loss."""
    compile_config = job_config.compile
    if compile_config.enable and "loss" in compile_config.components:
        logger.info("[LET] Compiling the alignment loss with torch.compile")
        return torch.compile(alignment_loss, backend=compile_config.backend)
    return alignment_loss
